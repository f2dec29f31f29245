"""djchat.asgi_server's uvicorn WebSocket protocol (uvicorn_websocket_protocol), served by uvicorn
in this process to a tiny ASGI app, with a client on websockets' sans-I/O protocol: it writes only
when told to, so it can hold its answer to the server's close frame for as long as a test needs.
"""

import asyncio
import contextlib
import socket

import pytest
import uvicorn
from uvicorn.protocols.utils import ClientDisconnected
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from djchat.asgi_server import uvicorn_websocket_protocol

MAX_SIZE = 64  # bytes in a message, for the server (uvicorn's ws_max_size)


@contextlib.asynccontextmanager
async def uvicorn_serving(app):
    """uvicorn with the launcher's protocol, on a free port of 127.0.0.1; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, http="h11", ws=uvicorn_websocket_protocol(), ws_max_size=MAX_SIZE,
        ws_ping_interval=None, ws_per_message_deflate=False, lifespan="off", log_config=None,
    )  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        await serving


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int):
        self.reader, self.writer = reader, writer
        self.protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/"))
        self.events: list = []

    @classmethod
    @contextlib.asynccontextmanager
    async def connected(cls, port: int):
        client = cls(*await asyncio.open_connection("127.0.0.1", port), port)
        try:
            client.protocol.send_request(client.protocol.connect())
            client.flush()
            response = await client.next_event()
            assert isinstance(response, Response)
            assert response.status_code == 101
            yield client
        finally:
            client.writer.close()
            with contextlib.suppress(ConnectionError):
                await client.writer.wait_closed()

    def flush(self) -> None:
        """Write what the protocol has queued: frames, including an answer to a close."""
        self.writer.write(b"".join(self.protocol.data_to_send()))

    async def next_event(self):
        while not self.events:
            data = await asyncio.wait_for(self.reader.read(65536), timeout=10)
            assert data, "the server closed the connection"
            self.protocol.receive_data(data)
            self.events += self.protocol.events_received()
        return self.events.pop(0)

    async def close_frame(self) -> Close:
        """The server's close frame (not answered until the next flush)."""
        frame = await self.next_event()
        assert isinstance(frame, Frame)
        assert frame.opcode is Opcode.CLOSE
        return Close.parse(frame.data)


@pytest.mark.parametrize(
    ("closed_by", "code", "repeated_close"),
    [("client", 1000, ClientDisconnected), ("app", 1000, None), ("size limit", 1009, None)],
    ids=["client-closed", "app-closed", "over-the-size-limit"],
)
async def test_a_send_after_a_close_raises_the_oserror_of_asgi_not_a_runtime_error(
    closed_by, code, repeated_close
):
    """A broadcast can reach a consumer after its socket's close and before the consumer has read
    the websocket.disconnect; chat.consumers.SOCKET_CLOSED expects the OSError of the ASGI spec
    for that send. uvicorn raises a RuntimeError while its own close frame waits for the client's
    answer (the app's close, the 1009 of a message over the limit); the launcher's protocol
    raises ClientDisconnected (an OSError) then, and ignores another close. After the client's
    close, uvicorn already raises ClientDisconnected, for a send and a close alike."""
    go = asyncio.Event()
    seen: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        if closed_by == "app":
            await send({"type": "websocket.close", "code": 1000})
        await go.wait()
        outcome = {}
        for message in ({"type": "websocket.send", "text": "late"}, {"type": "websocket.close"}):
            try:
                await send(message)
            except Exception as error:  # what the app sees is the point
                outcome[message["type"]] = type(error)
            else:
                outcome[message["type"]] = None
        outcome["disconnect"] = await receive()  # still queued: the send came before it
        seen.set_result(outcome)

    async with uvicorn_serving(app) as port, Client.connected(port) as client:
        if closed_by == "client":
            client.protocol.send_close(1000)
            client.flush()
        elif closed_by == "size limit":
            client.protocol.send_text(b"x" * (MAX_SIZE + 1))
            client.flush()
        assert (await client.close_frame()).code == code  # the server's close (or its answer)
        go.set()
        outcome = await asyncio.wait_for(seen, timeout=10)
        client.flush()  # the client's answer to a server's close: the handshake ends

    assert outcome["websocket.send"] is ClientDisconnected
    assert issubclass(outcome["websocket.send"], OSError)
    assert outcome["websocket.close"] is repeated_close
    assert outcome["disconnect"]["type"] == "websocket.disconnect"
    assert outcome["disconnect"]["code"] == code
