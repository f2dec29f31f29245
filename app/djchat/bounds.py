"""The integer settings the app reads from the environment: the default and the range of each.

Declared here once. settings.py and gunicorn.conf.py read them with djchat.env.env_bounded, which
refuses a value outside its range; the deploy role validates its variables against the same table
(scripts/app-bounds.py copies it to roles/djchat_stack/vars/main/app_bounds.yml), so a value the
role accepts is one the app starts with.

Plain data with no imports from Django, so gunicorn.conf.py and the scripts can read it too.
"""

from __future__ import annotations

from typing import NamedTuple


class Bound(NamedTuple):
    default: int
    minimum: int
    maximum: int


# An hour, a day: the longest sensible wait, lifetime or interval of the kind.
_HOUR = 3600
_DAY = 86400

INTEGERS: dict[str, Bound] = {
    # Two years: the longest max-age HSTS preload lists ask for.
    "DJANGO_HSTS_SECONDS": Bound(default=31536000, minimum=0, maximum=2 * 365 * _DAY),
    "CHAT_MAX_MESSAGE_LENGTH": Bound(default=2000, minimum=1, maximum=100000),
    "CHAT_RATE_LIMIT_MESSAGES": Bound(default=10, minimum=1, maximum=10000),
    "CHAT_RATE_LIMIT_SECONDS": Bound(default=10, minimum=1, maximum=_HOUR),
    # Anonymous messages from one client address over all its sockets, per CHAT_RATE_LIMIT_SECONDS.
    "CHAT_ADDRESS_RATE_LIMIT_MESSAGES": Bound(default=30, minimum=1, maximum=100000),
    # Open sockets of one account, over all addresses and rooms.
    "CHAT_ACCOUNT_MAX_SOCKETS": Bound(default=20, minimum=1, maximum=10000),
    # Both are sent as one WebSocket frame: the bounds keep it to tens of megabytes.
    "CHAT_HISTORY_SIZE": Bound(default=50, minimum=0, maximum=10000),
    "CHAT_RESUME_LIMIT": Bound(default=1000, minimum=1, maximum=100000),
    # Seconds; each connection sends a heartbeat every TTL/3.
    # Rooms that may exist (a room's first message creates it).
    "CHAT_MAX_ROOMS": Bound(default=10000, minimum=1, maximum=10000000),
    "CHAT_PRESENCE_TTL": Bound(default=30, minimum=2, maximum=_HOUR),
    "CHAT_ROOM_LIST_CACHE_SECONDS": Bound(default=2, minimum=0, maximum=_HOUR),
    # Failed logins of one account before it is locked, and for how long (django-axes).
    "ACCOUNT_LOCKOUT_FAILURES": Bound(default=5, minimum=1, maximum=1000),
    "ACCOUNT_LOCKOUT_SECONDS": Bound(default=900, minimum=1, maximum=_DAY),
    # 0 = one more than the CPUs the process may use, at most 12 (djchat.cpus.auto_workers).
    "GUNICORN_WORKERS": Bound(default=0, minimum=0, maximum=64),
    "GUNICORN_WORKER_CONNECTIONS": Bound(default=1000, minimum=1, maximum=100000),
    # gunicorn.conf.py starts gthread workers with 4 threads when the variable is unset.
    "GUNICORN_THREADS": Bound(default=1, minimum=1, maximum=64),
    "GUNICORN_TIMEOUT": Bound(default=30, minimum=1, maximum=_HOUR),
    "GUNICORN_GRACEFUL_TIMEOUT": Bound(default=30, minimum=1, maximum=_HOUR),
    # 0 closes every connection after its response (no keep-alive).
    "GUNICORN_KEEPALIVE": Bound(default=5, minimum=0, maximum=_HOUR),
    # 0 = workers are never recycled.
    "GUNICORN_MAX_REQUESTS": Bound(default=0, minimum=0, maximum=1000000),
    "GUNICORN_MAX_REQUESTS_JITTER": Bound(default=0, minimum=0, maximum=1000000),
}
