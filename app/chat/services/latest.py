"""The newest message id of every room, mirrored in Redis.

A broadcast that a full channel dropped is noticed by the next message of the room (its id is not
the next one expected). If nothing follows, each connection's presence heartbeat compares this value
with the last id it delivered, so even the last message of a burst arrives within one heartbeat.

One key per room, expiring like the room's presence key: only connections that are open read it,
each at least once per heartbeat, and a room nobody posts in leaves nothing behind. (Until
2026-12 it was one sorted set of every room that never expired: under volatile-lru Redis evicted
presence and channel-layer keys, which expire, before it.)
"""

from django.conf import settings
from redis.asyncio.client import Pipeline

from chat.services.redis_client import redis_client


def latest_key(room: str) -> str:
    return f"djchat:latest:{room}"


def expiry_seconds() -> int:
    # As long as presence keeps a silent room (presence.touch): several heartbeats.
    return settings.CHAT_PRESENCE_TTL * 2


def queue_record(pipe: Pipeline, room: str, message_id: int) -> None:
    """Queue record()'s commands on a pipeline (chat.services.fanout publishes in the same one)."""
    key = latest_key(room)
    # GT: only ever moves forward, whatever order processes report in.
    pipe.zadd(key, {"id": message_id}, gt=True)
    pipe.expire(key, expiry_seconds())


async def record(room: str, message_id: int) -> None:
    async with redis_client().pipeline(transaction=True) as pipe:
        queue_record(pipe, room, message_id)
        await pipe.execute()


async def latest(room: str) -> int:
    score = await redis_client().zscore(latest_key(room), "id")
    return int(score or 0)
