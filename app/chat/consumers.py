"""The chat WebSocket. It speaks the protocol (chat.protocol) and nothing else.

Who may connect is decided before it runs (chat.handshake). Storage goes through
chat.services.messages, synchronous ORM code that is only ever called through
database_sync_to_async so the event loop never blocks; presence and the latest-id tracker live in
Redis (chat.services.presence, chat.services.latest).

Broadcasts (messages, presence changes) reach the room's members through chat.services.fanout:
published once, received once per process, written to each local member as the same text. The
consumer uses no channel layer (issue 16: a group_send cost a Redis copy, a dispatch and a
json.dumps per member); its connection id for presence and quotas is its own.

Delivery guarantee: each connection sends a room's messages in id order without gaps. Ids are
contiguous per room, so a message that skips ahead shows that a broadcast never arrived (Redis
pub/sub drops what a disconnected process misses, and processes may publish out of order); the
connection then sends the missing ones from the database.
"""

import asyncio
import contextlib
import logging
import uuid
from collections import deque

from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat import metrics, protocol
from chat.handshake import Admission
from chat.protocol import ErrorCode, ProtocolError
from chat.ratelimit import TokenBucket
from chat.services import eager, fanout, latest, messages, presence, quotas
from djchat.middleware import HOSTNAME

logger = logging.getLogger(__name__)

# A broadcast may reach a member whose client has just closed its socket, before the disconnect
# reaches the consumer (which then leaves the room): daphne raises autobahn's Disconnected for
# that send, and the ASGI spec asks servers for an OSError. Nothing is lost: the client resumes
# with `since` when it comes back.
SOCKET_CLOSED = (Disconnected, OSError)

post_message = database_sync_to_async(messages.post_message)
recent_messages = database_sync_to_async(messages.recent_messages)
messages_after = database_sync_to_async(messages.messages_after)
latest_message_id = database_sync_to_async(messages.latest_message_id)


class ChatConsumer(AsyncWebsocketConsumer):
    # No channel layer is configured (CHANNEL_LAYERS is unset): broadcasts come from
    # chat.services.fanout, and Channels neither makes a channel per consumer nor listens on one.
    heartbeat: asyncio.Task | None = None
    catching_up: asyncio.Task | None = None
    # Frames waiting behind a send that waits for the socket to drain (send_shared), and the task
    # that writes them.
    backlog: deque[dict] | None = None
    draining: asyncio.Task | None = None
    catch_up_again = False
    # The id of the last message this client has (from history, resume or live delivery).
    delivered_up_to = 0
    # Until the history frame has gone out, broadcasts are not sent, only noted: the highest id.
    live = False
    seen_while_joining = 0
    online_sent: list[str] | None = None
    joined_hub = False

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Whatever ends the connection (even a cancelled application), the heartbeat must not
            # outlive it, or the connection would stay "online" forever; nor may the hub keep
            # writing to it.
            self.stop_heartbeat()
            if self.joined_hub:
                self.joined_hub = False
                fanout.hub().leave(self.room, self)

    # --- joining and leaving ------------------------------------------------------------------

    async def connect(self):
        # chat.handshake.ChatAdmissionMiddleware admitted this socket and says who it is.
        self.admission: Admission = self.scope["chat"]
        # Names this connection in presence and quotas (a channel name did before issue 16).
        self.channel_name = f"ws.{uuid.uuid4().hex}"
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
        self.rate_limit = TokenBucket(
            settings.CHAT_RATE_LIMIT_MESSAGES, settings.CHAT_RATE_LIMIT_SECONDS
        )
        # Subscribe before reading history: a message posted in between then arrives live (and is
        # noted, then sent from the database if the history does not have it) instead of falling
        # in the gap.
        self.joined_hub = True
        await fanout.hub().join(self.room, self)
        await self.accept()
        await metrics.acount(metrics.WEBSOCKETS_OPENED)
        await self.send_history()
        self.live = True
        if self.seen_while_joining > self.delivered_up_to:
            self.request_catch_up()
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
        if not self.joined_hub:  # connect() failed before joining
            return
        self.joined_hub = False
        fanout.hub().leave(self.room, self)
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
        # Stored first, announced second: whoever the broadcast misses finds it in the database
        # (the latest id is recorded with the broadcast, for the heartbeat's comparison).
        await fanout.publish_message(self.room, message)
        await metrics.acount(metrics.MESSAGES)

    # --- broadcasts from the fan-out hub (chat.services.fanout.Member) ------------------------
    # Called for every member of the room in turn: the common case is one comparison and one
    # write of the text shared by all; anything slower (a catch-up) runs in a task of its own.

    async def hub_message(self, message_id: int, event: dict) -> None:
        if not self.live:
            self.seen_while_joining = max(self.seen_while_joining, message_id)
        elif message_id == self.delivered_up_to + 1:
            self.delivered_up_to = message_id  # claimed before the send (see deliver)
            await self.send_shared(event)
        elif message_id > self.delivered_up_to:
            self.request_catch_up()
        # else: already delivered (by the history frame or an earlier catch-up)

    async def hub_presence(self, joined: list[str], left: list[str], event: dict) -> None:
        if self.online_sent is None:
            return  # this socket's own list has not gone out yet; it will include the change
        online = set(self.online_sent)
        new = [nick for nick in joined if nick not in online]
        gone = [nick for nick in left if nick in online]
        if not (new or gone):
            return
        self.online_sent = presence.sort_nicks((online | set(new)) - set(gone))
        if len(new) == len(joined) and len(gone) == len(left):
            await self.send_shared(event)  # the change as published, already encoded
        else:
            await self.send_shared(
                fanout.send_event(fanout.encode(protocol.presence_change_frame(new, gone)))
            )

    async def send_shared(self, event: dict) -> None:
        """Write a frame to this socket, in order, without ever making the caller wait for the
        client (chat.services.eager): the hub goes on to the other members while a send waits
        for this socket to drain, and what comes meanwhile waits in `backlog` behind it.
        Nothing is sent after the client has gone."""
        if self.backlog is not None:
            self.backlog.append(event)
            return
        try:
            draining = eager.start(self.base_send(event))
        except SOCKET_CLOSED:
            logger.debug("A frame to %r in %s found the socket closed", self.nick, self.room)
            return
        if draining is not None:
            # The server applies flow control (uvicorn does, daphne never): this client reads
            # slower than the room talks. Its ping timeout ends it if it stops reading for good.
            self.backlog = deque()
            self.draining = asyncio.create_task(self.drain_backlog(draining))

    async def drain_backlog(self, draining: asyncio.Task) -> None:
        try:
            await draining
            while self.backlog:
                await self.base_send(self.backlog.popleft())
        except SOCKET_CLOSED:
            logger.debug("A frame to %r in %s found the socket closed", self.nick, self.room)
        finally:
            self.backlog = None

    def hub_resubscribed(self) -> None:
        """The process was cut off from the room's broadcasts for a while (Redis restarted)."""
        if self.live:  # else the history, read after the join, has what was missed
            self.request_catch_up(check_latest=True)

    # --- delivery -----------------------------------------------------------------------------

    async def deliver(self, frames: list[dict]) -> None:
        # The live handler and the heartbeat may both be catching up; each id goes out once, and
        # it is claimed before the (yielding) send so the other cannot claim it too.
        for frame in frames:
            if frame["id"] > self.delivered_up_to:
                self.delivered_up_to = frame["id"]
                await self.send_shared(fanout.send_event(fanout.encode(frame)))

    def request_catch_up(self, *, check_latest: bool = False) -> None:
        """Catch up in a task of its own, one at a time: the hub goes on to the other members."""
        if self.catching_up is not None and not self.catching_up.done():
            self.catch_up_again = True
            return
        self.catching_up = asyncio.create_task(self.catch_up_in_background(check_latest))

    async def catch_up_in_background(self, check_latest: bool) -> None:
        try:
            if check_latest and await latest.latest(self.room) <= self.delivered_up_to:
                return
            while True:
                # A message that skipped ahead while this read ran may not be in its answer.
                self.catch_up_again = False
                await self.catch_up()
                if not self.catch_up_again:
                    return
        except Exception:
            # The heartbeat compares the latest id and tries again.
            logger.exception("Catching up failed for %r in %s", self.nick, self.room)

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
            frame = protocol.presence_change_frame(snapshot.joined, snapshot.left)
            await fanout.publish_presence_change(self.room, frame)

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
        if self.catching_up is not None:
            self.catching_up.cancel()
        if self.draining is not None:
            self.draining.cancel()

    # --- sending ------------------------------------------------------------------------------

    async def send_frame(self, frame: dict) -> None:
        """This socket's own frames (history, pong, presence, errors) take the broadcasts' path,
        so they keep their order with them."""
        await self.send_shared(fanout.send_event(fanout.encode(frame)))

    async def send_error(self, code: ErrorCode, detail: str) -> None:
        await self.send_frame(protocol.error_frame(code, detail))
