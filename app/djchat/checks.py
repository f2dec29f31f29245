"""The one setting that cannot have a default outside debug: the secret key.

settings.py lets an empty key load so build-time commands (collectstatic) need no configuration.
The servers (djchat.wsgi, djchat.asgi) call require_secret_key() before serving anything, and
`manage.py check --deploy` reports it. Management commands that never sign anything (migrate,
collectstatic, createsuperuser) run without it.
"""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

UNSET_KEY_MESSAGE = (
    "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is false: set it, or set "
    "DJANGO_SECRET_KEY_FILE to the path of a file holding it."
)


def secret_key_is_set() -> bool:
    try:
        return bool(settings.SECRET_KEY)
    except ImproperlyConfigured:  # Django refuses to hand out an empty key
        return False


def require_secret_key() -> None:
    if not secret_key_is_set():
        raise ImproperlyConfigured(UNSET_KEY_MESSAGE)


@checks.register(checks.Tags.security, deploy=True)
def check_secret_key(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if secret_key_is_set():
        return []
    return [checks.Error(UNSET_KEY_MESSAGE, id="djchat.E001")]
