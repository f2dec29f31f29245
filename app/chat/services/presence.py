"""Who is online in a room, kept in Redis so every daphne process sees the same answer.

Each room is a sorted set: one member per connection ("<channel name>\\n<nick>"), scored by the time
the entry expires. Connections refresh their entry every heartbeat_interval(); any refresh also
removes expired entries, so the connections of a daphne process that died without saying goodbye
vanish within one TTL, and the whole key expires once a room has nobody left to refresh it.
The set can therefore never only grow.

A nick connected twice (two tabs) is one name in the online list.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from chat.services.redis_client import redis_client

_SEPARATOR = "\n"  # nicks are printable, so they never contain it; channel names never do either


@dataclass(frozen=True)
class Snapshot:
    online: list[str]
    swept: int = 0  # expired entries removed by this call: a dead connection's, not the caller's


def presence_key(room: str) -> str:
    return f"djchat:presence:{room}"


def heartbeat_interval() -> float:
    # Three refreshes per TTL: a live connection survives two lost or late ones.
    return settings.CHAT_PRESENCE_TTL / 3


def _member(connection_id: str, nick: str) -> str:
    return f"{connection_id}{_SEPARATOR}{nick}"


def _nicks(members: list[str]) -> list[str]:
    nicks = {member.split(_SEPARATOR, 1)[1] for member in members}
    return sorted(nicks, key=lambda nick: (nick.casefold(), nick))


async def touch(room: str, connection_id: str, nick: str) -> Snapshot:
    """Add or refresh a connection's entry, sweep expired ones, and return who is online."""
    ttl = settings.CHAT_PRESENCE_TTL
    key = presence_key(room)
    now = time.time()
    async with redis_client().pipeline(transaction=True) as pipe:
        pipe.zadd(key, {_member(connection_id, nick): now + ttl})
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zrangebyscore(key, now, "+inf")
        pipe.expire(key, ttl * 2)
        _, swept, members, _ = await pipe.execute()
    return Snapshot(online=_nicks(members), swept=swept)


async def leave(room: str, connection_id: str, nick: str) -> Snapshot:
    key = presence_key(room)
    now = time.time()
    async with redis_client().pipeline(transaction=True) as pipe:
        pipe.zrem(key, _member(connection_id, nick))
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zrangebyscore(key, now, "+inf")
        _, swept, members = await pipe.execute()
    return Snapshot(online=_nicks(members), swept=swept)


async def online(room: str) -> list[str]:
    members = await redis_client().zrangebyscore(presence_key(room), time.time(), "+inf")
    return _nicks(members)
