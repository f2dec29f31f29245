"""The chat client of everything that talks to a deployed stack: the e2e tests, the resilience
traffic and the bench (bench/wsload.py). A member of a room speaking the WebSocket protocol of
app/README.md over websockets' asyncio API. (The app's own suite drives the consumer in process,
through Channels' WebsocketCommunicator: app/tests/support.py.)

    client = ChatClient("ws://127.0.0.1:8080", "lobby", "amy", origin="http://127.0.0.1:8080")
    await client.connect()                # the handshake, then the history frame
    message = await client.say("hello")   # as the server broadcast it back, with its id
    frame = await client.recv(timeout=5)  # the next frame, whatever it is
    await client.resume(retry_for=60)     # a new connection with since=<the last id it has>
    await client.close()

As frames arrive (`recv`) it keeps: the history frame, the last message id and every gap in the
ids (each connection must deliver a room's messages in id order without gaps, from the first
message of its history frame after `since` on), the nicks online (presence with its changes
applied), the error codes received, and when the last frame arrived (`received_at`,
time.perf_counter(), for latencies). With `record` (the default) every frame is kept too
(`frames`, for a failure's message); the bench turns that off.

Code that is not async (the pytest suites) wraps a client in SyncChatClient: the same client,
run on one event loop in a background thread (`run_blocking`), which also answers the server's
pings while the test does something else.

Found through pytest.ini's `pythonpath` by tests/e2e and tests/resilience, and through PYTHONPATH
by bench/wsload.py (bench/run.py sets it).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from ssl import SSLContext
from typing import Any, TypeVar
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

T = TypeVar("T")
Frame = dict[str, Any]

# What a reconnect retries: refused or failed handshakes (a 502 from nginx while a replica
# restarts, a reset, a timeout) and connections closed before their history frame.
TRANSIENT = (OSError, InvalidHandshake, TimeoutError, ConnectionClosed)


def chat_url(base_url: str, room: str, nick: str | None = None, since: int | None = None) -> str:
    """ws[s]://host:port/ws/chat/<room>/?nick=..&since=.. (the parameters that are not None)."""
    query = urlencode(
        {name: value for name, value in (("nick", nick), ("since", since)) if value is not None}
    )
    return f"{base_url.rstrip('/')}/ws/chat/{room}/" + (f"?{query}" if query else "")


class ChatClient:
    """One member of `room` at `base_url` (ws://host:port or wss://...), as `nick` (None: the
    account of the session cookie in `headers`). `origin` is the Origin header the site accepts
    (None: none sent). `timeout` bounds a connect (handshake and history frame) and is the
    default wait of `wait_for`. The connection options are websockets' own."""

    def __init__(
        self,
        base_url: str,
        room: str,
        nick: str | None = None,
        *,
        origin: str | None,
        headers: Mapping[str, str] | None = None,
        ssl: SSLContext | None = None,
        timeout: float = 10.0,
        record: bool = True,
        compression: str | None = "deflate",
        ping_interval: float | None = 20,
        close_timeout: float = 2.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.room = room
        self.nick = nick
        self.origin = origin
        self.headers = dict(headers or {})
        self.ssl = ssl
        self.timeout = timeout
        self.compression = compression
        self.ping_interval = ping_interval
        self.close_timeout = close_timeout
        self.ws: ClientConnection | None = None
        self.history: Frame = {}
        self.last_id = 0
        self.gaps: list[tuple[int, int]] = []  # (first, last) id missing, for each gap seen
        self.out_of_order = 0  # message frames whose id was not last_id + 1 (gaps and repeats)
        self.online: list[str] | None = None
        self.errors: Counter[str] = Counter()
        self.frames: list[Frame] | None = [] if record else None
        self.unmatched: deque[Frame] = deque()  # read by a wait but not matched: for the next
        self.received_at = 0.0
        self.connections = 0

    # --- connection -----------------------------------------------------------------------

    def url(self, since: int | None = None) -> str:
        return chat_url(self.base_url, self.room, self.nick, since)

    @property
    def served_by(self) -> str:
        """The asgi process of the current connection (its history frame)."""
        return self.history.get("served_by", "")

    @property
    def history_messages(self) -> list[Frame]:
        return self.history.get("messages", [])

    async def connect(
        self, since: int | None = None, *, retry_for: float = 0.0, timeout: float | None = None
    ) -> ChatClient:
        """Open a connection (with `since`: to get the messages after that id first) and read up
        to its history frame: the server has then joined the room. A connection still open is
        dropped first. Transient failures (TRANSIENT) are retried with exponential backoff and
        jitter for `retry_for` seconds, then the last one is raised (a refused handshake is
        websockets' InvalidStatus, with the response)."""
        deadline = time.monotonic() + retry_for
        delay = 0.2
        while True:
            try:
                await self._open(since, self.timeout if timeout is None else timeout)
            except TRANSIENT:
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay + random.uniform(0, delay))  # noqa: S311 (jitter)
                delay = min(2 * delay, 3.0)
            else:
                return self

    async def resume(self, *, retry_for: float = 0.0) -> ChatClient:
        """Connect again with since=<the last id it has>, as the protocol asks after any close:
        the history frame then holds every message missed meanwhile (up to the server's
        CHAT_RESUME_LIMIT, 1000)."""
        return await self.connect(self.last_id, retry_for=retry_for)

    async def _open(self, since: int | None, timeout: float) -> None:
        await self.abort()
        try:
            async with asyncio.timeout(timeout):
                self.ws = await connect(
                    self.url(since),
                    origin=self.origin,
                    additional_headers=self.headers,
                    ssl=self.ssl,
                    proxy=None,  # only ever the stack on this machine
                    compression=self.compression,
                    ping_interval=self.ping_interval,
                    open_timeout=None,  # the timeout above covers the handshake and the history
                    close_timeout=self.close_timeout,
                )
                # The history frame comes first; anything before it is kept for a wait.
                while (frame := await self.recv())["type"] != "history":
                    self.unmatched.append(frame)
        except BaseException:
            await self.abort()
            raise
        self.connections += 1
        self.history = frame
        messages = frame["messages"]
        if since is None:  # the latest messages, not necessarily the first: they start the count
            self.last_id = messages[-1]["id"] if messages else 0
        else:  # the messages after `since`: a message missing at the start is a gap too
            self.last_id = since
            for message in messages:
                self._count(message["id"])

    async def close(self) -> None:
        """Close the connection cleanly (at most close_timeout seconds)."""
        if self.ws is not None:
            await self.ws.close()

    async def abort(self) -> None:
        """Drop the connection without a closing handshake."""
        if self.ws is not None:
            self.ws.transport.abort()
            self.ws = None

    # --- frames ---------------------------------------------------------------------------

    async def send(self, frame: Frame) -> None:
        await self.connected().send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        """Send a text (str) or binary (bytes) frame exactly as given."""
        await self.connected().send(data)

    async def say(self, text: str) -> Frame:
        """Post a message and return it as the server broadcast it back (with its id)."""
        await self.send({"type": "message", "text": text})
        return await self.wait_for_message(text)

    def connected(self) -> ClientConnection:
        assert self.ws is not None, f"{self.nick or 'the client'} in {self.room} is not connected"
        return self.ws

    async def recv(self, timeout: float | None = None) -> Frame:
        """The next frame, applied to what the client keeps (see the module's docstring).
        Raises TimeoutError after `timeout` seconds (None: waits), ConnectionClosed at the end
        of the connection."""
        ws = self.connected()
        if timeout is None:
            raw = await ws.recv()
        else:
            async with asyncio.timeout(timeout):
                raw = await ws.recv()
        self.received_at = time.perf_counter()
        frame = json.loads(raw)
        kind = frame["type"]
        if kind == "message":
            self._count(frame["id"])
        elif kind == "presence":
            self.online = sorted(frame["online"])
        elif kind == "presence_change" and self.online is not None:
            self.online = sorted((set(self.online) | set(frame["joined"])) - set(frame["left"]))
        elif kind == "error":
            self.errors[frame.get("code", "?")] += 1
        if self.frames is not None:
            self.frames.append(frame)
        return frame

    def _count(self, message_id: int) -> None:
        expected = self.last_id + 1
        if message_id != expected:
            self.out_of_order += 1
            if message_id > expected:
                self.gaps.append((expected, message_id - 1))
        if message_id > self.last_id:
            self.last_id = message_id

    async def wait_for(
        self,
        predicate: Callable[[Frame], bool],
        timeout: float | None = None,
        what: str = "a frame",
    ) -> Frame:
        """The first frame (read by an earlier wait or arriving within `timeout`) matching
        `predicate`; the others are kept for the next wait. Raises AssertionError with the frames
        seen so far when none comes or the connection closes."""
        for frame in list(self.unmatched):
            if predicate(frame):
                self.unmatched.remove(frame)
                return frame
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = await self.recv(left)
            except TimeoutError:
                break
            except ConnectionClosed as closed:
                raise AssertionError(
                    f"connection closed ({closed}) while waiting for {what}; "
                    f"frames so far: {self.frames}"
                ) from None
            if predicate(frame):
                return frame
            self.unmatched.append(frame)
        raise AssertionError(
            f"no {what} within {timeout} s on the connection served by "
            f"{self.served_by or '?'}; frames so far: {self.frames}"
        )

    async def wait_for_message(self, text: str, timeout: float | None = None) -> Frame:
        return await self.wait_for(
            lambda frame: frame["type"] == "message" and frame["text"] == text,
            timeout,
            what=f"message {text!r}",
        )

    async def wait_for_presence(self, online: Iterable[str], timeout: float | None = None) -> None:
        """Until the nicks online (presence, its changes applied) are exactly `online`."""
        expected = sorted(online)
        if self.online == expected:
            return
        await self.wait_for(
            lambda frame: frame["type"].startswith("presence") and self.online == expected,
            timeout,
            what=f"presence {expected} (latest seen: {self.online})",
        )

    async def drain(self, quiet: float = 0.3) -> None:
        """Read whatever arrives until the connection is quiet for `quiet` seconds (kept for the
        next wait)."""
        while True:
            try:
                self.unmatched.append(await self.recv(quiet))
            except TimeoutError:
                return


async def handshake_status(
    url: str, *, origin: str | None, ssl: SSLContext | None = None, timeout: float = 10.0
) -> int:
    """The HTTP status a WebSocket handshake to `url` gets: 101 when accepted (then closed)."""
    try:
        async with connect(url, origin=origin, ssl=ssl, proxy=None, open_timeout=timeout):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


# --- for code that is not async ------------------------------------------------------------------

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The event loop the blocking callers share, running in a daemon thread from first use to
    the end of the process."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="chat-clients", daemon=True).start()
        return _loop


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on the background loop and wait for its result (or its exception)."""
    return asyncio.run_coroutine_threadsafe(coroutine, background_loop()).result()


class SyncChatClient:
    """A ChatClient for code that is not async: its coroutine methods block until done (on the
    background loop), with the same arguments, results and exceptions; everything else is the
    client's own (history, served_by, online, frames, last_id, ...). A context manager that
    closes the connection."""

    def __init__(self, client: ChatClient):
        self.client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        @functools.wraps(attribute)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return run_blocking(attribute(*args, **kwargs))

        return blocking

    def __enter__(self) -> SyncChatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
