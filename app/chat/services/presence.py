"""Who is online in a room, kept in Redis so every daphne process sees the same answer.

Each room is a sorted set: one member per connection ("<channel name>\\n<nick>"), scored by the time
the entry expires. Connections refresh their entry every heartbeat_interval(); any refresh also
removes expired entries, so the connections of a daphne process that died without saying goodbye
vanish within one TTL, and the whole key expires once a room has nobody left to refresh it.
The set can therefore never only grow.

A nick connected twice (two tabs) is one name in the online list. Changes are told as changes: a
nick's first connection "joined", its last one "left" (chat.consumers sends each member a small
frame, not the whole list: a full list per join was quadratic in a room's size under churn).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings

from chat.services.redis_client import redis_client

_SEPARATOR = "\n"  # nicks are printable, so they never contain it; channel names never do either


@dataclass(frozen=True)
class Snapshot:
    online: list[str]
    # Nicks whose first connection this call added (the caller's), and nicks with no connection
    # left: the caller's on its last leave, or those of dead processes' entries swept here.
    joined: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.joined or self.left)


def presence_key(room: str) -> str:
    return f"djchat:presence:{room}"


def heartbeat_interval() -> float:
    # Three refreshes per TTL: a live connection survives two lost or late ones.
    return settings.CHAT_PRESENCE_TTL / 3


def sort_nicks(nicks) -> list[str]:
    return sorted(set(nicks), key=lambda nick: (nick.casefold(), nick))


def _member(connection_id: str, nick: str) -> str:
    return f"{connection_id}{_SEPARATOR}{nick}"


def _nick(member: str) -> str:
    return member.split(_SEPARATOR, 1)[1]


def _snapshot(live: list[str], expired: list[str], mine: str | None, nick: str) -> Snapshot:
    nicks = [_nick(member) for member in live]
    online = sort_nicks(nicks)
    gone = {_nick(member) for member in expired} - set(online)
    joined = [nick] if mine == "joined" and nicks.count(nick) == 1 else []
    if mine == "left" and nick not in online:
        gone.add(nick)
    return Snapshot(online=online, joined=joined, left=sort_nicks(gone))


async def touch(room: str, connection_id: str, nick: str) -> Snapshot:
    """Add or refresh a connection's entry, sweep expired ones, and say who is online now.

    The Redis transaction makes the answer exact even when two tabs of one nick join at once: one
    of them sees itself alone and reports the nick joined, the other sees both.
    """
    ttl = settings.CHAT_PRESENCE_TTL
    key = presence_key(room)
    now = time.time()
    async with redis_client().pipeline(transaction=True) as pipe:
        pipe.zrangebyscore(key, "-inf", now)
        pipe.zadd(key, {_member(connection_id, nick): now + ttl})
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zrangebyscore(key, now, "+inf")
        pipe.expire(key, ttl * 2)
        expired, added, _, live, _ = await pipe.execute()
    return _snapshot(live, expired, "joined" if added else None, nick)


async def leave(room: str, connection_id: str, nick: str) -> Snapshot:
    key = presence_key(room)
    now = time.time()
    async with redis_client().pipeline(transaction=True) as pipe:
        pipe.zrem(key, _member(connection_id, nick))
        pipe.zrangebyscore(key, "-inf", now)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zrangebyscore(key, now, "+inf")
        removed, expired, _, live = await pipe.execute()
    return _snapshot(live, expired, "left" if removed else None, nick)


async def online(room: str) -> list[str]:
    members = await redis_client().zrangebyscore(presence_key(room), time.time(), "+inf")
    return sort_nicks(_nick(member) for member in members)
