"""ASGI entry point (daphne): HTTP through Django, WebSockets through Channels.

Run as: python -m djchat.asgi_server -b 0.0.0.0 -p 8001 --proxy-headers djchat.asgi:application
(daphne, closing failed WebSockets with a close frame: see djchat/asgi_server.py)
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djchat.settings")
# Set Django up before anything imports models (the consumers do).
django_http_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402
from djchat.checks import require_secret_key  # noqa: E402
from djchat.origin import OriginCheck  # noqa: E402

require_secret_key()

# In debug a lone daphne serves the static files too (as runserver would); in production nginx does.
http_application = (
    ASGIStaticFilesHandler(django_http_application) if settings.DEBUG else django_http_application
)

application = ProtocolTypeRouter(
    {
        "http": http_application,
        # The Origin check comes first: a refused handshake costs no session lookup.
        "websocket": OriginCheck(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
