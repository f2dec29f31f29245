"""Limits that hold across sockets and processes, kept in Redis: what one sender may do in total.

A socket's own token bucket (chat.ratelimit) stops one connection flooding; these stop a client
that opens many. Each limit has one key per sender that expires on its own, so nothing here grows:

- messages per account, over all of its sockets: CHAT_RATE_LIMIT_MESSAGES per
  CHAT_RATE_LIMIT_SECONDS, the same budget as one socket (one person types that fast at most);
- anonymous messages per client address, over all of its sockets:
  CHAT_ADDRESS_RATE_LIMIT_MESSAGES per CHAT_RATE_LIMIT_SECONDS (anyone may open sockets under new
  nicks, so the address is what they cannot change; accounts have their own budget instead);
- open sockets per account, over all addresses: CHAT_ACCOUNT_MAX_SOCKETS (nginx limits sockets
  per address).

The address is the one daphne reports (scope["client"]): nginx's, which is the client's own or,
in trusted-proxy mode, the one the trusted balancer forwarded.
"""

from __future__ import annotations

import time

from django.conf import settings

from chat.services.redis_client import redis_client

# GCRA, a token bucket stored as one number: the "theoretical arrival time" after which the bucket
# is full again. A message is allowed while that time is at most (capacity - 1) intervals ahead;
# each one moves it an interval further. The key lives until the bucket is full again. Redis's
# clock, so every process of every host measures the same way.
_BUCKET = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local full_at = tonumber(redis.call('GET', KEYS[1]) or '0')
if full_at < now then full_at = now end
if full_at - now > tolerance then return 0 end
full_at = full_at + interval
redis.call('SET', KEYS[1], string.format('%.6f', full_at), 'PX', math.ceil((full_at - now) * 1000))
return 1
"""

# One member per open socket, scored by when its entry expires unless refreshed (like presence).
# A socket already counted is always let through: a refresh must never fail.
_SOCKETS = """
local now = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('EXPIRE', KEYS[1], ttl * 2)
return 1
"""


def account_messages_key(account_id: int) -> str:
    return f"djchat:quota:messages:account:{account_id}"


def address_messages_key(address: str) -> str:
    return f"djchat:quota:messages:address:{address}"


def account_sockets_key(account_id: int) -> str:
    return f"djchat:quota:sockets:account:{account_id}"


async def _take(key: str, capacity: int, per_seconds: float) -> bool:
    interval = per_seconds / capacity
    allowed = await redis_client().eval(
        _BUCKET, 1, key, repr(interval), repr(interval * (capacity - 1))
    )
    return bool(allowed)


async def message_refusal(account_id: int | None, address: str) -> str | None:
    """Take one message from the sender's budget; None if allowed, else why not (for the client)."""
    seconds = settings.CHAT_RATE_LIMIT_SECONDS
    if account_id is not None:
        key = account_messages_key(account_id)
        limit = settings.CHAT_RATE_LIMIT_MESSAGES
        sender = "one account, over all of its connections"
    else:
        key = address_messages_key(address)
        limit = settings.CHAT_ADDRESS_RATE_LIMIT_MESSAGES
        sender = "one address without an account"
    if await _take(key, limit, seconds):
        return None
    return f"At most {limit} messages per {seconds} seconds from {sender}; this one was not sent."


async def hold_socket(account_id: int, connection_id: str) -> bool:
    """Count (or refresh) an account's open socket; False if the account already has its maximum.

    Entries expire after CHAT_PRESENCE_TTL unless refreshed (the presence heartbeat does), so the
    sockets of a process that died stop counting on their own.
    """
    allowed = await redis_client().eval(
        _SOCKETS,
        1,
        account_sockets_key(account_id),
        connection_id,
        repr(time.time()),
        settings.CHAT_PRESENCE_TTL,
        settings.CHAT_ACCOUNT_MAX_SOCKETS,
    )
    return bool(allowed)


async def release_socket(account_id: int, connection_id: str) -> None:
    await redis_client().zrem(account_sockets_key(account_id), connection_id)
