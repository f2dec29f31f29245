"""Turn the few deploy-time values into the dictionaries Django and Channels expect.

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
# channels_redis receives with BZPOPMIN blocking for 5 s (RedisChannelLayer.brpop_timeout), and
# redis-py 8 defaults every socket read to a 5 s timeout: left alone the two race, and a consumer
# whose read loses dies with "Timeout reading from redis" (its socket closes with 1011). The
# channel layer's reads get a timeout well past the blocking call, still short enough to notice a
# dead connection.
CHANNEL_LAYER_SOCKET_TIMEOUT_SECONDS = 20

# Seconds a SQLite writer waits for the lock before "database is locked"; several gunicorn and
# daphne processes share one file.
SQLITE_BUSY_TIMEOUT_SECONDS = 20


def default_database_url(base_dir: Path, data_dir: Path = Path("/data")) -> str:
    """SQLite on the shared data volume in the image, next to manage.py elsewhere."""
    directory = data_dir if data_dir.is_dir() else base_dir
    return f"sqlite:///{directory / 'db.sqlite3'}"


def database(url: str, password: str | None = None) -> dict:
    config = dj_database_url.parse(url, conn_health_checks=True)
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


# The channels_redis layers CHANNEL_LAYER_BACKEND chooses between.
CHANNEL_LAYER_BACKENDS = {
    # Queues in Redis: group_send puts a copy on every member's channel, and each daphne process
    # pops them one by one. Bounded per channel (capacity), survives a short consumer stall.
    "core": "channels_redis.core.RedisChannelLayer",
    # Redis pub/sub: one PUBLISH per group_send, received once per daphne process and handed to its
    # members in memory. Cheaper per delivery; a process that is disconnected misses what was
    # published meanwhile (the consumers' heartbeat repairs that from the database).
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}


def channel_layers(
    url: str,
    password: str | None,
    *,
    capacity: int,
    expiry: int,
    group_expiry: int,
    backend: str = "core",
) -> dict:
    if backend not in CHANNEL_LAYER_BACKENDS:
        choices = ", ".join(CHANNEL_LAYER_BACKENDS)
        raise ValueError(f"channel layer backend {backend!r} is not one of {choices}")
    layer = {
        "hosts": [
            {
                "address": url,
                "password": password,
                "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
                "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT_SECONDS,
            }
        ],
        "prefix": "djchat:asgi",
    }
    if backend == "core":
        # A channel holding `capacity` undelivered messages drops further group_send messages
        # silently; chat history plus `since` resume is what recovers them.
        layer |= {"capacity": capacity, "expiry": expiry, "group_expiry": group_expiry}
    return {"default": {"BACKEND": CHANNEL_LAYER_BACKENDS[backend], "CONFIG": layer}}
