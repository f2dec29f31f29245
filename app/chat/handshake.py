"""Who may open a chat socket, decided before the consumer exists.

A refused handshake costs one response and nothing else: no consumer, no room subscription, no
presence entry. Every refusal is
logged with its reason, because the client only sees HTTP 403.
"""

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings

from chat.services import messages
from chat.validation import (
    clean_nick,
    is_valid_room_name,
    mixes_scripts,
    parse_message_id,
    scripts_of,
)

logger = logging.getLogger(__name__)

nick_belongs_to_user = database_sync_to_async(messages.nick_belongs_to_user)


class Refused(Exception):
    """The handshake is turned down; the message says why, for the log."""


@dataclass(frozen=True)
class Admission:
    room: str
    nick: str
    since: int | None
    author_id: int | None


async def refuse(receive, send) -> None:
    """Answer the handshake with a close, which the server turns into HTTP 403."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})


def parse_since(raw: str | None) -> int | None:
    if raw is None:
        return None
    since = parse_message_id(raw)
    if since is None:
        raise Refused(f"since={raw[:40]!r} is not a message id")
    return since


async def admit(scope) -> Admission:
    room = scope["url_route"]["kwargs"]["room"]
    if not is_valid_room_name(room):
        raise Refused(f"room name {room!r} does not match [a-z0-9-]{{1,50}}")
    params = parse_qs(scope.get("query_string", b"").decode("latin1"))
    since = parse_since(params.get("since", [None])[-1])

    user = scope.get("user")
    if user is not None and user.is_authenticated:
        # The session decides who this is; a nick parameter is ignored.
        if clean_nick(user.username) != user.username:
            raise Refused(f"username {user.username!r} is not usable as a nick")
        return Admission(room=room, nick=user.username, since=since, author_id=user.pk)

    if not settings.CHAT_ALLOW_ANONYMOUS:
        raise Refused("anonymous chat is disabled (CHAT_ALLOW_ANONYMOUS=false)")
    nick = clean_nick(params.get("nick", [None])[-1])
    if nick is None:
        raise Refused("missing or invalid nick (1-32 printable characters)")
    if mixes_scripts(nick):
        raise Refused(f"nick {nick!r} mixes scripts ({', '.join(sorted(scripts_of(nick)))})")
    if await nick_belongs_to_user(nick):
        raise Refused(f"nick {nick!r} is, or looks like, a registered username")
    return Admission(room=room, nick=nick, since=since, author_id=None)


class ChatAdmissionMiddleware:
    """Puts the Admission in scope["chat"] for the consumer, or refuses the handshake."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        try:
            admission = await admit(scope)
        except Refused as refusal:
            logger.info("Refused WebSocket handshake for %r: %s", scope.get("path"), refusal)
            await refuse(receive, send)
            return
        await self.application({**scope, "chat": admission}, receive, send)
