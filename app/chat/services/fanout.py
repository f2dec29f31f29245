"""Room fan-out: one Redis pub/sub subscription per process per room, one encoding per message.

Until issue 16 every message went through the channel layer's group_send: a copy in Redis per
member, a receive and a dispatch per consumer, a json.dumps per member; about 600 µs of CPU per
delivery, twenty times what a plain relay needs. Here a room's broadcasts are published once, as
the frame text the members get, to the room's pub/sub channel. Each process subscribes to a room's
channel while it holds at least one of its members (SUBSCRIBE on the first local join,
UNSUBSCRIBE after the last local leave), all rooms over one connection, and hands each published
frame to every local member: the cost per member is one call that writes the shared text to its
socket.

Sending in sequence: the hub calls each member in turn, in one task, and a member's send never
makes it wait. daphne's send never waits (it hands the frame to Twisted, which buffers in the
process); uvicorn's waits for the socket to drain when its client reads slower than the room talks.
The consumer (ChatConsumer.send_shared) runs each send eagerly (chat.services.eager): one that
finishes at once costs no task, one that has to wait finishes in a task of that member's own,
with later frames queued behind it, so a slow client costs the others nothing (tests/
test_fanout_hub.py checks that with a client that stops reading, under both servers).

Redis pub/sub delivers at most once: a process that is disconnected misses what was published
meanwhile. The reader reconnects and resubscribes every room it holds, then asks each member to
repair (chat.consumers compares the room's latest id with what it delivered and reads the rest
from the database); the members' heartbeat does the same in any case, so nothing is lost for
longer than one heartbeat. Members see ids in order and catch up when one skips ahead, so a
process receiving broadcasts out of order costs a database read, never a gap.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from chat.services import latest
from chat.services.redis_client import redis_client
from djchat.config import REDIS_CONNECT_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "djchat:room:"
# How long the reader waits for a frame before it checks the connection (a PING every
# HEALTH_CHECK_SECONDS of silence finds a connection that died without a word).
READ_TIMEOUT_SECONDS = 5
HEALTH_CHECK_SECONDS = 15
# Between attempts to reach Redis again, doubling up to the longest.
RECONNECT_FIRST_SECONDS = 0.1
RECONNECT_LONGEST_SECONDS = 2
# How long a join waits for its room's subscription before it gives up (Redis is down).
JOIN_WAIT_SECONDS = REDIS_CONNECT_TIMEOUT_SECONDS + 5

# The first line of a published payload says what follows: "m <id>" (a message frame with that
# id) or "p" (a presence change frame); the frame text itself is the rest, sent as it is.
_MESSAGE, _PRESENCE = "m", "p"


class Member(Protocol):
    """What the hub needs of a local member (chat.consumers.ChatConsumer)."""

    def hub_message(self, message_id: int, event: dict) -> Awaitable[None]: ...

    def hub_presence(self, joined: list[str], left: list[str], event: dict) -> Awaitable[None]: ...

    def hub_resubscribed(self) -> None: ...


def channel(room: str) -> str:
    return f"{CHANNEL_PREFIX}{room}"


def encode(frame: dict) -> str:
    """A frame's text as every member receives it (the one json.dumps of a broadcast)."""
    return json.dumps(frame, ensure_ascii=False)


def send_event(text: str) -> dict:
    # One ASGI message for all members: the servers and the test communicator only read it.
    return {"type": "websocket.send", "text": text}


async def publish_message(room: str, message: dict) -> None:
    """Record the room's latest id (chat.services.latest) and publish the message, in one round
    trip and one transaction: a member that misses the broadcast finds the id it lacks."""
    payload = f"{_MESSAGE} {message['id']}\n{encode(message)}"
    async with redis_client().pipeline(transaction=True) as pipe:
        latest.queue_record(pipe, room, message["id"])
        pipe.publish(channel(room), payload)
        await pipe.execute()


async def publish_presence_change(room: str, frame: dict) -> None:
    await _publish(room, f"{_PRESENCE}\n{encode(frame)}")


async def _publish(room: str, payload: str) -> None:
    await redis_client().publish(channel(room), payload)


@dataclass
class _Room:
    members: dict[Member, None] = field(default_factory=dict)  # insertion-ordered set
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # subscribed (confirmed)
    subscribed_before: bool = False  # a confirmation now is a resubscription


class Hub:
    """The fan-out of one event loop (an asgi process has one; each test has its own)."""

    def __init__(self) -> None:
        self.rooms: dict[str, _Room] = {}
        self.pubsub: PubSub | None = None
        self.client: Redis | None = None
        # Commands on the pub/sub connection go one at a time, in the order they were asked for:
        # an UNSUBSCRIBE of the last leave is sent before the SUBSCRIBE of the next join.
        self.commands = asyncio.Lock()
        self.has_rooms = asyncio.Event()
        self.reader: asyncio.Task | None = None
        self.background: set[asyncio.Task] = set()

    # --- members --------------------------------------------------------------------------

    async def join(self, room: str, member: Member) -> None:
        """Add a member; returns once this process is subscribed to the room's channel."""
        entry = self.rooms.get(room)
        if entry is None:
            entry = self.rooms[room] = _Room()
            entry.members[member] = None
            self.has_rooms.set()
            self._start_reader()
            await self._command("SUBSCRIBE", room)
        else:
            entry.members[member] = None
        async with asyncio.timeout(JOIN_WAIT_SECONDS):
            await entry.ready.wait()

    def leave(self, room: str, member: Member) -> None:
        """Remove a member at once (nothing is sent to it after this); the last one of the room
        unsubscribes in the background. Synchronous, so a cancelled connection leaves too."""
        entry = self.rooms.get(room)
        if entry is None or member not in entry.members:
            return
        del entry.members[member]
        if not entry.members:
            del self.rooms[room]
            if not self.rooms:
                self.has_rooms.clear()
            task = asyncio.create_task(self._command("UNSUBSCRIBE", room))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    def member_count(self, room: str) -> int:
        entry = self.rooms.get(room)
        return len(entry.members) if entry else 0

    async def close(self) -> None:
        """Stop reading and drop the connection (tests, before their event loop ends)."""
        for task in [self.reader, *self.background]:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._disconnect()
        self.rooms.clear()

    # --- the connection -------------------------------------------------------------------

    async def _command(self, command: str, room: str) -> None:
        async with self.commands:
            if self.pubsub is None:
                return  # the reader subscribes every room in self.rooms when it connects
            if (command == "SUBSCRIBE") != (room in self.rooms):
                # Overtaken: the room's last member left before this SUBSCRIBE went out, or a
                # member joined again before this UNSUBSCRIBE did. The latest wish wins.
                return
            try:
                if command == "SUBSCRIBE":
                    await self.pubsub.subscribe(channel(room))
                else:
                    await self.pubsub.unsubscribe(channel(room))
            except (RedisError, OSError) as error:
                # The reader fails on the same connection and resubscribes what is wanted then.
                logger.warning("Fan-out %s %s failed: %s", command, room, error)

    async def _connect(self) -> None:
        async with self.commands:
            if not self.rooms:
                return  # all left meanwhile: wait for the next join
            self.client = Redis.from_url(
                settings.REDIS_URL,
                password=settings.REDIS_PASSWORD,
                decode_responses=True,
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
                socket_timeout=None,  # the reader waits for frames as long as it takes
                health_check_interval=HEALTH_CHECK_SECONDS,
                retry=Retry(NoBackoff(), 0),  # the reader reconnects, and resubscribes, itself
            )
            self.pubsub = self.client.pubsub()
            await self.pubsub.subscribe(*(channel(room) for room in self.rooms))

    async def _disconnect(self) -> None:
        pubsub, client = self.pubsub, self.client
        self.pubsub = self.client = None
        for entry in self.rooms.values():
            entry.ready.clear()
        try:
            if pubsub is not None:
                await pubsub.aclose()
            if client is not None:
                await client.aclose()
        except (RedisError, OSError):
            pass  # already gone

    def _start_reader(self) -> None:
        if self.reader is None or self.reader.done():
            self.reader = asyncio.create_task(self._read(), name="chat fan-out")

    async def _read(self) -> None:
        pause = RECONNECT_FIRST_SECONDS
        while True:
            try:
                if self.pubsub is None:
                    await self.has_rooms.wait()
                    await self._connect()
                    pause = RECONNECT_FIRST_SECONDS
                    continue
                frame = await self.pubsub.get_message(timeout=READ_TIMEOUT_SECONDS)
            except (RedisError, OSError) as error:
                logger.warning("Fan-out lost Redis (%s); resubscribing in %s s", error, pause)
                await self._disconnect()
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT_LONGEST_SECONDS)
                continue
            if frame is not None:
                await self._handle(frame)

    # --- frames from Redis ----------------------------------------------------------------

    async def _handle(self, frame: dict) -> None:
        kind = frame["type"]
        if kind not in ("message", "subscribe"):
            return  # unsubscribe confirmations, health check answers
        room = frame["channel"][len(CHANNEL_PREFIX) :]
        entry = self.rooms.get(room)
        if entry is None:
            return  # left meanwhile, or an unsubscribe confirmation
        if kind == "message":
            await self._fan_out(entry, frame["data"])
        elif kind == "subscribe" and not entry.ready.is_set():
            entry.ready.set()
            if entry.subscribed_before:
                for member in list(entry.members):
                    member.hub_resubscribed()
            entry.subscribed_before = True

    async def _fan_out(self, entry: _Room, payload: str) -> None:
        header, _, text = payload.partition("\n")
        event = send_event(text)
        if header == _PRESENCE:
            change = json.loads(text)
            joined, left = change["joined"], change["left"]
            for member in list(entry.members):
                try:
                    await member.hub_presence(joined, left, event)
                except Exception:  # one member's failure is its own: the others still get it
                    logger.exception("Fan-out of a presence change to a member failed")
        else:
            message_id = int(header[len(_MESSAGE) + 1 :])
            for member in list(entry.members):
                try:
                    await member.hub_message(message_id, event)
                except Exception:
                    logger.exception("Fan-out of message %s to a member failed", message_id)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (one per asgi process)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found


async def close_hub() -> None:
    found = _hubs.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()
