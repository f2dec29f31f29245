"""Settings for djchat. Every deploy-time value is read here, from the environment, and only here.

The variables are listed in README.md ("Configuration"); each NAME may be given as NAME_FILE instead
(see djchat/env.py), and the default and range of every integer are declared in djchat/bounds.py.
Nothing here needs the database or Redis to be reachable, and a missing secret key is not fatal at
import time, so `collectstatic` runs at image build time with no configuration; the servers refuse
to start without the key (djchat/checks.py).
"""

from datetime import timedelta
from pathlib import Path

from djchat import config
from djchat.env import env_bool, env_bounded, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -------------------------------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", False)

# An empty key is allowed to load so that build-time commands work; djchat.checks.require_secret_key
# stops gunicorn and daphne, and `manage.py check --deploy` reports it, when it is missing.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or ""
if not SECRET_KEY and DEBUG:
    SECRET_KEY = "django-insecure-debug-only-never-deploy-this-key"  # noqa: S105 (debug only)

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",  # first, so `manage.py runserver` serves the ASGI application, WebSockets included
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "axes",
    "channels",
    "chat",
]

MIDDLEWARE = [
    # Outermost, so redirects and errors produced by the middleware below carry the header too.
    "djchat.middleware.ServedByMiddleware",
    # Before anything that validates the Host header or redirects to HTTPS (see its docstring).
    "djchat.health.HealthCheckMiddleware",
    # Below the health checks, which it does not count.
    "chat.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "djchat.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "djchat.urls"
WSGI_APPLICATION = "djchat.wsgi.application"
ASGI_APPLICATION = "djchat.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- HTTPS and the reverse proxy --------------------------------------------------------------

# Behind a TLS-terminating proxy Django sees plain HTTP; trusting the proxy's X-Forwarded-Proto
# makes request.is_secure() true, which the CSRF Origin/Referer check and secure cookies depend on.
# Only enable it when the proxy always sets (or strips) that header.
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

HTTPS = env_bool("DJANGO_HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
# Container health checks speak plain HTTP to the process directly; they must not be redirected
# (djchat.health.HealthCheckMiddleware already answers them first; this keeps it true without it).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_bounded("DJANGO_HSTS_SECONDS") if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# Asking browsers to preload HSTS is a commitment an operator makes for the whole domain, not a
# default this app can make for them; the deploy check's reminder is silenced unless they opt in.
SILENCED_SYSTEM_CHECKS = [
    # Accounts are locked whatever address the attempts come from (AXES_LOCKOUT_PARAMETERS);
    # the per-address limit is nginx's (djchat_nginx_login_limit_*).
    "axes.W006",
    *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
]

# --- Database ---------------------------------------------------------------------------------

DATABASES = {
    "default": config.database(
        env_str("DATABASE_URL") or config.default_database_url(BASE_DIR),
        password=env_str("DATABASE_PASSWORD"),
        # Set by djchat.asgi_server, the asgi process type's launcher, for its own process.
        asgi_process=env_bool("DJCHAT_ASGI_PROCESS", False),
    )
}

# Sessions live in the database that gunicorn and daphne share, so a login served by one process
# type authenticates WebSockets served by the other, and survives a Redis restart.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Sign-up and password changes: Django's own validators. At least 12 characters (OWASP's advice
# when nothing else, like MFA, backs the password), not close to the username, not one of the
# 20,000 common passwords Django ships, not digits only.
# Guessing one account's password: after ACCOUNT_LOCKOUT_FAILURES failed logins in a row (the
# login page and the admin's alike) the account is refused for ACCOUNT_LOCKOUT_SECONDS, whatever
# address the attempts come from (django-axes; the per-address limit is nginx's). The failures are
# counted in the Redis cache, expiring with the lockout; a successful login starts the count again.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_LOCKOUT_PARAMETERS = ["username"]
ACCOUNT_LOCKOUT_FAILURES = env_bounded("ACCOUNT_LOCKOUT_FAILURES")
ACCOUNT_LOCKOUT_SECONDS = env_bounded("ACCOUNT_LOCKOUT_SECONDS")
AXES_FAILURE_LIMIT = ACCOUNT_LOCKOUT_FAILURES
AXES_COOLOFF_TIME = timedelta(seconds=ACCOUNT_LOCKOUT_SECONDS)
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# Django's default hashers, with its PBKDF2 one computed off the gevent hub (djchat.hashers).
PASSWORD_HASHERS = [
    "djchat.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
_VALIDATORS = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{_VALIDATORS}.UserAttributeSimilarityValidator"},
    {"NAME": f"{_VALIDATORS}.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": f"{_VALIDATORS}.CommonPasswordValidator"},
    {"NAME": f"{_VALIDATORS}.NumericPasswordValidator"},
]

# --- Redis: cache, presence, fan-out (chat.services.fanout; no channel layer) ------------------

REDIS_PASSWORD = env_str("REDIS_PASSWORD") or None
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
if REDIS_PASSWORD:
    REDIS_URL = config.redis_url_without_password(REDIS_URL)

CACHES = config.redis_cache(REDIS_URL, REDIS_PASSWORD)

# --- Chat -------------------------------------------------------------------------------------

CHAT_MAX_MESSAGE_LENGTH = env_bounded("CHAT_MAX_MESSAGE_LENGTH")
CHAT_RATE_LIMIT_MESSAGES = env_bounded("CHAT_RATE_LIMIT_MESSAGES")
CHAT_RATE_LIMIT_SECONDS = env_bounded("CHAT_RATE_LIMIT_SECONDS")
# Across sockets (chat.services.quotas): an account has CHAT_RATE_LIMIT_MESSAGES over all of its
# sockets; anonymous sockets share one budget per client address.
CHAT_ADDRESS_RATE_LIMIT_MESSAGES = env_bounded("CHAT_ADDRESS_RATE_LIMIT_MESSAGES")
CHAT_ACCOUNT_MAX_SOCKETS = env_bounded("CHAT_ACCOUNT_MAX_SOCKETS")
CHAT_HISTORY_SIZE = env_bounded("CHAT_HISTORY_SIZE")
CHAT_RESUME_LIMIT = env_bounded("CHAT_RESUME_LIMIT")
CHAT_ALLOW_ANONYMOUS = env_bool("CHAT_ALLOW_ANONYMOUS", True)
CHAT_PRESENCE_TTL = env_bounded("CHAT_PRESENCE_TTL")
CHAT_MAX_ROOMS = env_bounded("CHAT_MAX_ROOMS")
# Seconds the home page's "Recently active" list is served from the cache (0 = never cached).
CHAT_ROOM_LIST_CACHE_SECONDS = env_bounded("CHAT_ROOM_LIST_CACHE_SECONDS")

# --- Metrics (chat.metrics) -------------------------------------------------------------------

# /metrics in Prometheus's format, and the counters behind it (one Redis command per counted
# request, socket or message): off unless asked for. nginx decides who may read it.
METRICS_ENABLED = env_bool("METRICS_ENABLED", False)
# The port of the stub_status of the nginx that forwards a scrape (0: none to read).
METRICS_NGINX_STATUS_PORT = env_int("METRICS_NGINX_STATUS_PORT", 0, minimum=0, maximum=65535)

# --- Static files -----------------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed file names, so the proxy may cache /static/ for a year; in DEBUG the plain names are
    # used and served by the ASGI/WSGI process itself.
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

# --- Logging ----------------------------------------------------------------------------------

LOG_LEVEL = (env_str("DJANGO_LOG_LEVEL", "INFO") or "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    # Django attaches its own handlers to "django"; route it to stdout once instead.
    "loggers": {"django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False}},
}
