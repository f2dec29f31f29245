"""The asyncio Redis client of presence and the latest-id tracker (the cache and the channel layer
have their own)."""

from __future__ import annotations

import asyncio
import weakref

import redis
from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis

from djchat.config import REDIS_CONNECT_TIMEOUT_SECONDS

# Connections per process, and how long a caller waits for one. Thousands of WebSockets joining or
# heartbeating at once must queue for a connection: redis-py's default pool raises "Too many
# connections" past 100 (which closed ~200 of 10,000 idle sockets in the capacity benchmark), and
# an unbounded one would open a socket to Redis per waiting caller.
POOL_CONNECTIONS = 100
POOL_WAIT_SECONDS = 10

# One client (and connection pool) per event loop: redis.asyncio connections are bound to the loop
# that opened them. A daphne process has one loop; a test suite has many.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[tuple, Redis]] = (
    weakref.WeakKeyDictionary()
)


def redis_client() -> Redis:
    loop = asyncio.get_running_loop()
    wanted = (settings.REDIS_URL, settings.REDIS_PASSWORD)
    cached = _clients.get(loop)
    if cached is not None and cached[0] == wanted:
        return cached[1]
    pool = BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        password=settings.REDIS_PASSWORD,
        decode_responses=True,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=5,
        max_connections=POOL_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
    )
    client = Redis.from_pool(pool)  # closing the client closes its pool
    _clients[loop] = (wanted, client)
    return client


async def close_client() -> None:
    """Release this event loop's connections (tests call it before their loop closes)."""
    cached = _clients.pop(asyncio.get_running_loop(), None)
    if cached is not None:
        await cached[1].aclose()


def sync_redis_client(*, socket_timeout: float) -> redis.Redis:
    """A blocking client of the same Redis, bytes in and out (chat.metrics in gunicorn workers,
    chat.backup in a one-shot container)."""
    return redis.Redis.from_url(
        settings.REDIS_URL, password=settings.REDIS_PASSWORD, socket_timeout=socket_timeout
    )
