"""The chat WebSocket. It speaks the protocol (chat.protocol) and nothing else: who may connect is
decided before it runs (chat.handshake), storage goes through
chat.services.messages (synchronous ORM, so always via database_sync_to_async, never on the event
loop) and presence through chat.services.presence (Redis).
"""

import asyncio
import contextlib
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat import protocol
from chat.handshake import Admission
from chat.protocol import ErrorCode, ProtocolError
from chat.ratelimit import TokenBucket
from chat.services import messages, presence
from djchat.middleware import HOSTNAME

logger = logging.getLogger(__name__)

post_message = database_sync_to_async(messages.post_message)
recent_messages = database_sync_to_async(messages.recent_messages)
messages_after = database_sync_to_async(messages.messages_after)


def room_group(room: str) -> str:
    return f"chat.{room}"


class ChatConsumer(AsyncWebsocketConsumer):
    heartbeat: asyncio.Task | None = None
    # Ids up to this one were delivered in the history frame; live copies of them are skipped.
    history_last_id = 0
    online_sent: list[str] | None = None

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Whatever ends the connection (even a cancelled application), the heartbeat must not
            # outlive it, or the connection would stay "online" forever.
            self.stop_heartbeat()

    # --- handshake ----------------------------------------------------------------------------

    async def connect(self):
        # chat.handshake.ChatAdmissionMiddleware admitted this socket and says who it is.
        self.admission: Admission = self.scope["chat"]
        room, nick = self.admission.room, self.admission.nick
        self.group = room_group(room)
        self.rate_limit = TokenBucket(
            settings.CHAT_RATE_LIMIT_MESSAGES, settings.CHAT_RATE_LIMIT_SECONDS
        )
        # Subscribe before reading history: a message posted in between then arrives live (and
        # is skipped if the history already had it) instead of falling in the gap.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_history()
        snapshot = await presence.touch(room, self.channel_name, nick)
        await self.broadcast_presence(snapshot.online)
        self.heartbeat = asyncio.create_task(self.keep_presence_alive())
        logger.debug("%s joined %s", nick, room)

    async def send_history(self) -> None:
        room, since = self.admission.room, self.admission.since
        if since is None:
            history = await recent_messages(room, settings.CHAT_HISTORY_SIZE)
        else:
            history = await messages_after(room, since, settings.CHAT_RESUME_LIMIT)
        self.history_last_id = max([since or 0, *(message["id"] for message in history)])
        await self.send_frame(protocol.history_frame(room, HOSTNAME, history))

    # --- frames from the client ---------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is None:
            await self.send_error(ErrorCode.BINARY_NOT_SUPPORTED, "Send JSON in text frames.")
            return
        try:
            frame = protocol.parse_client_frame(text_data, settings.CHAT_MAX_MESSAGE_LENGTH)
        except ProtocolError as error:
            await self.send_error(error.code, error.detail)
            return

        if frame.type == "ping":
            await self.send_frame(protocol.PONG_FRAME)
            return
        if not self.rate_limit.allow():
            await self.send_error(
                ErrorCode.RATE_LIMITED,
                f"At most {settings.CHAT_RATE_LIMIT_MESSAGES} messages per "
                f"{settings.CHAT_RATE_LIMIT_SECONDS} seconds; this one was not sent.",
            )
            return
        admission = self.admission
        message = await post_message(
            admission.room, admission.nick, frame.text, admission.author_id
        )
        # Stored first, broadcast second: a member whose channel is full (group_send drops
        # silently) or who is reconnecting gets the message from history with `since`.
        await self.channel_layer.group_send(
            self.group, {"type": "chat.message", "message": message}
        )

    # --- events from the channel layer --------------------------------------------------------

    async def chat_message(self, event):
        message = event["message"]
        if message["id"] > self.history_last_id:
            await self.send_frame(message)

    async def presence_update(self, event):
        await self.send_presence_if_changed(event["online"])

    # --- presence -----------------------------------------------------------------------------

    async def broadcast_presence(self, online: list[str]) -> None:
        await self.channel_layer.group_send(
            self.group, {"type": "presence.update", "online": online}
        )

    async def send_presence_if_changed(self, online: list[str]) -> None:
        if online != self.online_sent:
            self.online_sent = online
            await self.send_frame(protocol.presence_frame(online))

    async def keep_presence_alive(self) -> None:
        room, nick = self.admission.room, self.admission.nick
        while True:
            await asyncio.sleep(presence.heartbeat_interval())
            try:
                snapshot = await presence.touch(room, self.channel_name, nick)
                if snapshot.swept:
                    # Someone's entry expired (their process died): tell the whole room.
                    await self.broadcast_presence(snapshot.online)
                else:
                    # Also repairs a presence broadcast this connection missed or got out of order.
                    await self.send_presence_if_changed(snapshot.online)
            except Exception:
                logger.exception("Presence heartbeat failed for %r in %s", nick, room)

    def stop_heartbeat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()

    async def disconnect(self, code):
        if not hasattr(self, "group"):  # connect() failed before joining
            return
        if self.heartbeat is not None:
            self.stop_heartbeat()
            with contextlib.suppress(asyncio.CancelledError):
                await self.heartbeat
        await self.channel_layer.group_discard(self.group, self.channel_name)
        snapshot = await presence.leave(self.admission.room, self.channel_name, self.admission.nick)
        await self.broadcast_presence(snapshot.online)
        logger.debug("%s left %s (close code %s)", self.admission.nick, self.admission.room, code)

    # --- sending ------------------------------------------------------------------------------

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=json.dumps(frame, ensure_ascii=False))

    async def send_error(self, code: ErrorCode, detail: str) -> None:
        await self.send_frame(protocol.error_frame(code, detail))
