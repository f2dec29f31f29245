"""The chat WebSocket. It speaks the protocol (chat.protocol) and nothing else.

Who may connect is decided before it runs (chat.handshake). Storage goes through
chat.services.messages, synchronous ORM code that is only ever called through
database_sync_to_async so the event loop never blocks; presence and the latest-id tracker live in
Redis (chat.services.presence, chat.services.latest).

Delivery guarantee: each connection sends a room's messages in id order without gaps. Ids are
contiguous per room, so a message that skips ahead shows that a broadcast never arrived (channels
drops group messages for a full channel without a word, and processes may relay out of order);
the connection then sends the missing ones from the database.
"""

import asyncio
import contextlib
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat import metrics, protocol
from chat.handshake import Admission
from chat.protocol import ErrorCode, ProtocolError
from chat.ratelimit import TokenBucket
from chat.services import latest, messages, presence, quotas
from djchat.middleware import HOSTNAME

logger = logging.getLogger(__name__)

post_message = database_sync_to_async(messages.post_message)
recent_messages = database_sync_to_async(messages.recent_messages)
messages_after = database_sync_to_async(messages.messages_after)
latest_message_id = database_sync_to_async(messages.latest_message_id)


def room_group(room: str) -> str:
    return f"chat.{room}"


class ChatConsumer(AsyncWebsocketConsumer):
    heartbeat: asyncio.Task | None = None
    # The id of the last message this client has (from history, resume or live delivery).
    delivered_up_to = 0
    online_sent: list[str] | None = None

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Whatever ends the connection (even a cancelled application), the heartbeat must not
            # outlive it, or the connection would stay "online" forever.
            self.stop_heartbeat()

    # --- joining and leaving ------------------------------------------------------------------

    async def connect(self):
        # chat.handshake.ChatAdmissionMiddleware admitted this socket and says who it is.
        self.admission: Admission = self.scope["chat"]
        self.room, self.nick = self.admission.room, self.admission.nick
        client = self.scope.get("client")
        self.address = client[0] if client else "unknown"
        if not await self.hold_account_socket():
            logger.info(
                "Refused a socket of %r: %s already open (CHAT_ACCOUNT_MAX_SOCKETS)",
                self.nick,
                settings.CHAT_ACCOUNT_MAX_SOCKETS,
            )
            await self.close()  # before accept: the client sees HTTP 403
            return
        self.group = room_group(self.room)
        self.rate_limit = TokenBucket(
            settings.CHAT_RATE_LIMIT_MESSAGES, settings.CHAT_RATE_LIMIT_SECONDS
        )
        # Subscribe before reading history: a message posted in between then arrives live (and is
        # skipped, the history having it already) instead of falling in the gap.
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.groups.append(self.group)  # so channels discards it however the socket ends
        await self.accept()
        await metrics.acount(metrics.WEBSOCKETS_OPENED)
        await self.send_history()
        snapshot = await presence.touch(self.room, self.channel_name, self.nick)
        await self.send_presence_if_changed(snapshot.online)  # the whole list, to this one only
        await self.broadcast_presence_change(snapshot)
        self.heartbeat = asyncio.create_task(self.keep_alive())

    async def hold_account_socket(self) -> bool:
        """Count this socket against its account's maximum (anonymous ones: nginx, per address)."""
        account_id = self.admission.author_id
        return account_id is None or await quotas.hold_socket(account_id, self.channel_name)

    async def send_history(self) -> None:
        since = self.admission.since
        if since is None:
            history = await recent_messages(self.room, settings.CHAT_HISTORY_SIZE)
        else:
            history = await messages_after(self.room, since, settings.CHAT_RESUME_LIMIT)
        if history:
            self.delivered_up_to = history[-1]["id"]
        elif since is None and settings.CHAT_HISTORY_SIZE > 0:
            # The room had no messages when the history was read. Not the latest id read now: a
            # message posted in between would count as delivered and never arrive (ids start at 1).
            self.delivered_up_to = 0
        else:
            # The client has everything so far: CHAT_HISTORY_SIZE=0, or a resume with nothing
            # new. A `since` from the future (the room was reset) is clamped so it cannot mute the
            # next messages.
            latest_id = await latest_message_id(self.room)
            self.delivered_up_to = latest_id if since is None else min(since, latest_id)
        await self.send_frame(protocol.history_frame(self.room, HOSTNAME, history))

    async def disconnect(self, code):
        # Channels has already left the groups in self.groups.
        if not hasattr(self, "group"):  # connect() failed before joining
            return
        await metrics.acount(metrics.WEBSOCKETS_CLOSED)
        if self.admission.author_id is not None:
            await quotas.release_socket(self.admission.author_id, self.channel_name)
        if self.heartbeat is not None:
            self.stop_heartbeat()
            with contextlib.suppress(asyncio.CancelledError):
                await self.heartbeat
        snapshot = await presence.leave(self.room, self.channel_name, self.nick)
        await self.broadcast_presence_change(snapshot)

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
        # This socket's own bucket first: a flood on one socket costs no Redis round trip.
        if not self.rate_limit.allow():
            refusal = (
                f"At most {settings.CHAT_RATE_LIMIT_MESSAGES} messages per "
                f"{settings.CHAT_RATE_LIMIT_SECONDS} seconds; this one was not sent."
            )
        else:
            refusal = await quotas.message_refusal(self.admission.author_id, self.address)
        if refusal is None:
            await self.post(frame.text)
        else:
            await metrics.acount(metrics.MESSAGES_REFUSED)
            await self.send_error(ErrorCode.RATE_LIMITED, refusal)

    async def post(self, text: str) -> None:
        try:
            message = await post_message(self.room, self.nick, text, self.admission.author_id)
        except messages.RoomLimitReached:
            await self.send_error(
                ErrorCode.ROOM_LIMIT,
                f"This chat holds at most {settings.CHAT_MAX_ROOMS} rooms, and this one would be "
                "new; this message was not sent.",
            )
            return
        # Stored first, announced second: whoever the broadcast misses finds it in the database.
        await latest.record(self.room, message["id"])
        await self.channel_layer.group_send(
            self.group, {"type": "chat.message", "message": message}
        )
        await metrics.acount(metrics.MESSAGES)

    # --- events from the channel layer --------------------------------------------------------

    async def chat_message(self, event):
        message = event["message"]
        if message["id"] == self.delivered_up_to + 1:
            await self.deliver([message])
        elif message["id"] > self.delivered_up_to:
            await self.catch_up()
        # else: already delivered (by the history frame or an earlier catch-up)

    async def presence_change(self, event):
        if self.online_sent is None:
            return  # this socket's own list has not gone out yet; it will include the change
        online = set(self.online_sent)
        joined = [nick for nick in event["joined"] if nick not in online]
        left = [nick for nick in event["left"] if nick in online]
        if joined or left:
            self.online_sent = presence.sort_nicks((online | set(joined)) - set(left))
            await self.send_frame(protocol.presence_change_frame(joined, left))

    # --- delivery -----------------------------------------------------------------------------

    async def deliver(self, frames: list[dict]) -> None:
        # The live handler and the heartbeat may both be catching up; each id goes out once, and
        # it is claimed before the (yielding) send so the other cannot claim it too.
        for frame in frames:
            if frame["id"] > self.delivered_up_to:
                self.delivered_up_to = frame["id"]
                await self.send_frame(frame)

    async def catch_up(self) -> None:
        missing = await messages_after(self.room, self.delivered_up_to, settings.CHAT_RESUME_LIMIT)
        if missing:
            logger.info(
                "Sending %s missed message(s) of %s to %r from the database",
                len(missing),
                self.room,
                self.nick,
            )
        await self.deliver(missing)

    # --- presence -----------------------------------------------------------------------------

    async def broadcast_presence_change(self, snapshot: presence.Snapshot) -> None:
        """Tell the room who came and went: a few nicks per member, not the whole list."""
        if snapshot.changed:
            await self.channel_layer.group_send(
                self.group,
                {"type": "presence.change", "joined": snapshot.joined, "left": snapshot.left},
            )

    async def send_presence_if_changed(self, online: list[str]) -> None:
        """The whole list, when it differs from what this client was told (joining, repairs)."""
        if online != self.online_sent:
            self.online_sent = online
            await self.send_frame(protocol.presence_frame(online))

    async def keep_alive(self) -> None:
        """Refresh this connection's presence entry and repair what broadcasts missed."""
        while True:
            await asyncio.sleep(presence.heartbeat_interval())
            try:
                await self.hold_account_socket()  # refreshed with presence: both expire alike
                snapshot = await presence.touch(self.room, self.channel_name, self.nick)
                if snapshot.changed:
                    # Someone's entries expired (their process died): tell the whole room, this
                    # socket included.
                    await self.broadcast_presence_change(snapshot)
                else:
                    # Repairs a change this connection missed (or got out of order).
                    await self.send_presence_if_changed(snapshot.online)
                if await latest.latest(self.room) > self.delivered_up_to:
                    await self.catch_up()
            except Exception:
                logger.exception("Heartbeat failed for %r in %s", self.nick, self.room)

    def stop_heartbeat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()

    # --- sending ------------------------------------------------------------------------------

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=json.dumps(frame, ensure_ascii=False))

    async def send_error(self, code: ErrorCode, detail: str) -> None:
        await self.send_frame(protocol.error_frame(code, detail))
