"""Message persistence. Synchronous ORM code: the consumer calls it through database_sync_to_async.

Every function returns MESSAGE frames (plain dicts), the shape both the WebSocket and the HTTP API
send, so the two can never disagree. A message's "id" is its number within the room (Message.seq).
"""

from datetime import UTC

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F

from chat.models import AccountNick, Message, Room


def message_frame(message: Message, room_name: str) -> dict:
    timestamp = message.created_at.astimezone(UTC).isoformat(timespec="milliseconds")
    return {
        "type": "message",
        "id": message.seq,
        "room": room_name,
        "nick": message.nick,
        # Whether the nick is an account's (logged in) or a visitor's own choice.
        "account": message.author_id is not None,
        "text": message.text,
        "ts": timestamp.replace("+00:00", "Z"),
    }


class RoomLimitReached(Exception):
    """The message would create a room beyond CHAT_MAX_ROOMS; nothing was stored."""


def post_message(room_name: str, nick: str, text: str, author_id: int | None = None) -> dict:
    """Store a message and return its frame; the caller broadcasts it only after this commits.

    A room's first message creates it, unless CHAT_MAX_ROOMS rooms exist: names cost nothing to
    make up, rows do. (Two rooms created at the same instant may both pass the count; the bound
    is approximate by that much, never unbounded.)
    """
    with transaction.atomic():
        # The row lock serialises a room's writers (PostgreSQL; SQLite's IMMEDIATE transactions
        # serialise all writers anyway), so ids are handed out without gaps and in commit order:
        # a client that saw id N never later misses a smaller id committed after N.
        room = Room.objects.select_for_update().filter(name=room_name).first()
        if room is None:
            if Room.objects.count() >= settings.CHAT_MAX_ROOMS:
                raise RoomLimitReached(room_name)
            room, _ = Room.objects.select_for_update().get_or_create(name=room_name)
        message = Message.objects.create(
            room=room, seq=room.last_message_id + 1, nick=nick, text=text, author_id=author_id
        )
        Room.objects.filter(pk=room.pk).update(
            last_message_id=F("last_message_id") + 1, last_message_at=message.created_at
        )
    return message_frame(message, room_name)


def recent_messages(room_name: str, limit: int) -> list[dict]:
    """The newest `limit` messages, oldest first."""
    newest = Message.objects.filter(room__name=room_name).order_by("-seq")[:limit]
    return [message_frame(message, room_name) for message in reversed(newest)]


def messages_after(room_name: str, since: int, limit: int) -> list[dict]:
    """Messages with an id above `since`, oldest first, at most `limit` of them.

    The oldest ones come first so a client that gets a full page asks again from the last id it
    received and never skips anything.
    """
    after = Message.objects.filter(room__name=room_name, seq__gt=since).order_by("seq")[:limit]
    return [message_frame(message, room_name) for message in after]


def latest_message_id(room_name: str) -> int:
    return (
        Room.objects.filter(name=room_name).values_list("last_message_id", flat=True).first() or 0
    )


def nick_belongs_to_user(nick: str) -> bool:
    """Whether an anonymous nick would pass for an account: the same username in another case,
    or one that merely looks the same (chat.validation.nick_key)."""
    return (
        AccountNick.taken(nick) or get_user_model().objects.filter(username__iexact=nick).exists()
    )


def active_rooms(limit: int = 20) -> list[Room]:
    return list(
        Room.objects.filter(last_message_at__isnull=False).order_by("-last_message_at")[:limit]
    )
