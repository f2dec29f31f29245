"""Turn the few deploy-time values into the dictionaries Django expects.

Pure functions, so settings.py stays a flat list of decisions and the test suite can point the same
shapes at its own Redis server without repeating them.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url

# How long a connection attempt to Redis may take before the request (or the readiness probe) fails
# instead of hanging.
REDIS_CONNECT_TIMEOUT_SECONDS = 2
REDIS_CACHE_SOCKET_TIMEOUT_SECONDS = 2
# Seconds a SQLite writer waits for the lock before "database is locked"; several gunicorn and
# daphne processes share one file.
SQLITE_BUSY_TIMEOUT_SECONDS = 20
# How long the asgi process (djchat.asgi_server) keeps its database connection. All its database
# calls run on one thread (Channels' database_sync_to_async), so it needs one connection, and a new
# one per message cost more than the message: opening SQLite (its pragmas, Django's functions) and
# closing it (a WAL checkpoint when it was the last) took 1.2 of 1.9 ms of CPU per post measured
# here. gunicorn's processes open one per request as before: under gevent each request is a
# greenlet with connections of its own, which a longer age would leave open.
ASGI_CONNECTION_MAX_AGE_SECONDS = 600


def default_database_url(base_dir: Path, data_dir: Path = Path("/data")) -> str:
    """SQLite on the shared data volume in the image, next to manage.py elsewhere."""
    directory = data_dir if data_dir.is_dir() else base_dir
    return f"sqlite:///{directory / 'db.sqlite3'}"


def database(url: str, password: str | None = None, *, asgi_process: bool = False) -> dict:
    """Django's DATABASES entry for `url`; the asgi process keeps its connection (checked before
    each use after a failure), the others close theirs after each request."""
    max_age = ASGI_CONNECTION_MAX_AGE_SECONDS if asgi_process else 0
    config = dj_database_url.parse(url, conn_max_age=max_age, conn_health_checks=True)
    if password:
        config["PASSWORD"] = password
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            # WAL lets readers proceed while one process writes; IMMEDIATE takes the write lock at
            # BEGIN, so two writers queue on the busy timeout instead of one failing mid-transaction
            # with "database is locked" when it upgrades a read lock.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
        }
    return config


def redis_url_without_password(url: str) -> str:
    """REDIS_PASSWORD wins over a password written into REDIS_URL.

    redis-py lets a password in the URL override the one passed as an argument, so the URL's is
    removed rather than left to win silently.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redis_cache(url: str, password: str | None) -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "djchat",
            "OPTIONS": {
                "password": password,
                "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_CACHE_SOCKET_TIMEOUT_SECONDS,
            },
        }
    }
