"""The newest message id of every room, mirrored in Redis.

A broadcast that a full channel dropped is noticed by the next message of the room (its id is not
the next one expected). If nothing follows, each connection's presence heartbeat compares this value
with the last id it delivered, so even the last message of a burst arrives within one heartbeat.
"""

from chat.services.redis_client import redis_client

LATEST_IDS_KEY = "djchat:latest-message-ids"


async def record(room: str, message_id: int) -> None:
    # GT: only ever moves forward, whatever order processes report in.
    await redis_client().zadd(LATEST_IDS_KEY, {room: message_id}, gt=True)


async def latest(room: str) -> int:
    score = await redis_client().zscore(LATEST_IDS_KEY, room)
    return int(score or 0)
