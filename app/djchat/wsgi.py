"""WSGI entry point (gunicorn): plain HTTP.

Run as: gunicorn -c gunicorn.conf.py djchat.wsgi:application
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djchat.settings")
application = get_wsgi_application()

from djchat.checks import require_secret_key  # noqa: E402

require_secret_key()
