"""Shared test helpers: a WebSocket client for the chat consumer, and waiting for conditions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import urlencode

from channels.testing import WebsocketCommunicator

from chat.services.presence import sort_nicks

# Long enough for a slow CI machine, short enough that a missing frame fails fast.
FRAME_TIMEOUT = 5.0
SITE_HOST = "localhost"  # one of ALLOWED_HOSTS
ALLOWED_ORIGIN = f"http://{SITE_HOST}"  # a page of that site, as a browser names it


def asgi_application():
    # Imported on first use: djchat.asgi refuses to load without a secret key, which the test
    # session's settings fixture provides only once the session has started.
    from djchat.asgi import application

    return application


def from_address(application, address: str):
    """The application as a client at `address` reaches it (daphne sets scope["client"] from the
    peer or, behind nginx, from X-Forwarded-For; the test communicator sets none)."""

    async def app(scope, receive, send):
        await application({**scope, "client": (address, 50000)}, receive, send)

    return app


def socket_path(room: str, nick: str | None = None, since: int | None = None) -> str:
    params = {}
    if nick is not None:
        params["nick"] = nick
    if since is not None:
        params["since"] = since
    query = urlencode(params)
    return f"/ws/chat/{room}/" + (f"?{query}" if query else "")


class ChatSocket:
    """One client connection to the full ASGI application (origin check, session auth, routing)."""

    def __init__(self, communicator: WebsocketCommunicator):
        self.communicator = communicator
        self.accepted = False
        self.closed = False
        self.history: dict | None = None
        # The nicks online as this client knows them: the last presence frame, changes applied.
        self.online: list[str] | None = None

    async def receive(self, timeout: float = FRAME_TIMEOUT) -> dict:
        frame = json.loads(await self.communicator.receive_from(timeout))
        if frame["type"] == "presence":
            self.online = frame["online"]
        elif frame["type"] == "presence_change":
            assert self.online is not None, f"{frame} before the first presence frame"
            assert not set(frame["joined"]) & set(self.online), f"{frame}: already online"
            assert set(frame["left"]) <= set(self.online), f"{frame}: was not online"
            self.online = sort_nicks((set(self.online) | set(frame["joined"])) - set(frame["left"]))
        return frame

    async def receive_type(self, frame_type: str, timeout: float = FRAME_TIMEOUT) -> dict:
        """The next frame of `frame_type`, skipping others (presence updates arrive at any time)."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {frame_type!r} frame within {timeout} s; got {skipped}"
            frame = await self.receive(remaining)
            if frame["type"] == frame_type:
                return frame
            skipped.append(frame)

    async def presence_becomes(self, online: list[str], timeout: float = FRAME_TIMEOUT) -> None:
        """Read frames until the nicks online, as this client knows them, are `online`."""
        deadline = time.monotonic() + timeout
        seen = []
        while self.online != online:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"presence never became {online} within {timeout} s; saw {seen}"
            frame = await self.receive(remaining)
            if frame["type"].startswith("presence"):
                seen.append(self.online)

    async def send(self, frame: dict | str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.communicator.send_to(bytes_data=frame)
        elif isinstance(frame, str):
            await self.communicator.send_to(text_data=frame)
        else:
            await self.communicator.send_json_to(frame)

    async def say(self, text: str) -> dict:
        """Send a chat message and return its echo (the sender is a member of the room too)."""
        await self.send({"type": "message", "text": text})
        deadline = time.monotonic() + FRAME_TIMEOUT
        while True:
            frame = await self.receive_type("message", max(0.01, deadline - time.monotonic()))
            if frame["text"] == text:
                return frame

    async def receives_nothing(self, timeout: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(timeout)

    async def close(self) -> None:
        # Refused sockets too: the server then tells the application the client went away, and
        # the consumer stops listening on the channel layer.
        if not self.closed:
            self.closed = True
            await self.communicator.disconnect(timeout=FRAME_TIMEOUT)


class ChatClients:
    """Opens sockets for a test and closes every one of them afterwards (see the `chat` fixture)."""

    def __init__(self):
        self.sockets: list[ChatSocket] = []

    async def open(
        self,
        room: str,
        nick: str | None = None,
        *,
        since: int | None = None,
        origin: str | None = ALLOWED_ORIGIN,
        cookie: str | None = None,
        path: str | None = None,
        host: str = SITE_HOST,
        extra_headers: tuple[tuple[bytes, bytes], ...] = (),
        address: str = "127.0.0.1",
    ) -> ChatSocket:
        # The Host a browser sends with the handshake: the site its page came from.
        headers = [(b"host", host.encode("latin1")), *extra_headers]
        if origin is not None:
            headers.append((b"origin", origin.encode("latin1")))
        if cookie is not None:
            headers.append((b"cookie", cookie.encode("latin1")))
        communicator = WebsocketCommunicator(
            from_address(asgi_application(), address),
            path or socket_path(room, nick, since),
            headers=headers,
        )
        socket = ChatSocket(communicator)
        socket.accepted, _ = await communicator.connect(timeout=FRAME_TIMEOUT)
        self.sockets.append(socket)
        return socket

    async def join(self, room: str, nick: str | None = None, **options) -> ChatSocket:
        """Open a socket that must be accepted, and read its history frame."""
        socket = await self.open(room, nick, **options)
        assert socket.accepted, f"handshake for {room!r} as {nick!r} was refused; see the log"
        socket.history = await socket.receive()
        assert socket.history["type"] == "history", f"first frame was {socket.history}"
        return socket

    async def close_all(self) -> None:
        for socket in self.sockets:
            await socket.close()


def wait_until(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)
