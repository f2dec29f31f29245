"""The asgi process type: uvicorn (the default) or daphne serving djchat.asgi:application, set up
from one set of options so that either behaves as the stack needs.

Run as: python -m djchat.asgi_server --server uvicorn --bind 0.0.0.0 --port 8001
(`--help` lists the options; roles/djchat_stack/templates/asgi_command.yml.j2 passes them all).

What both servers are given:
- A frame and message limit of chat.protocol.max_frame_size(CHAT_MAX_MESSAGE_LENGTH) (13,024 bytes
  for the default 2,000 characters), what the app's longest message needs, instead of their own
  1 MiB (daphne) or 16 MiB (uvicorn). A client past it is closed with 1009 "message too big".
- Pings every --ping-interval seconds, and a close after --ping-timeout seconds without a pong.
- The client's address and scheme from nginx's X-Forwarded-For and X-Forwarded-Proto (only nginx
  reaches these containers, and it overwrites both headers).
- One database connection, kept (djchat.config.ASGI_CONNECTION_MAX_AGE_SECONDS), not one per
  message: the launcher sets DJCHAT_ASGI_PROCESS for the settings.
- On SIGTERM, --close-timeout seconds for the app to finish: uvicorn closes each WebSocket with 1012
  "service restart" and waits for the app's tasks; daphne stops its listener and gives the app
  the same time after each disconnect. Clients reconnect to another replica and resume with `since`.

uvicorn runs with wsproto (sans-I/O WebSockets, closing an oversized message and refusing a send
after its close frame as daphne does: uvicorn_websocket_protocol) on h11 and plain asyncio,
per-message deflate off (daphne never negotiates it), no lifespan (the app has no "lifespan" route)
and no Server header.

daphne refuses a frame over its size limit and a protocol violation through autobahn, whose default
is to drop the TCP connection without a close frame ("failByDrop"). A client cannot tell that from
a network failure, so it reconnects and sends the same frame again; with failByDrop off, autobahn
sends the close frame the RFC asks for (1009, 1002). daphne alone also limits a WebSocket's whole
life (--websocket-timeout) and its handshake (--connect-timeout); uvicorn has neither, and a
connection lasts until a side closes it or a ping goes unanswered.
"""

import argparse
import os

APPLICATION = "djchat.asgi:application"
SERVERS = ("uvicorn", "daphne")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m djchat.asgi_server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--server", choices=SERVERS, default=SERVERS[0])
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on")  # noqa: S104
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--ping-interval", type=positive, default=20, help="seconds")
    parser.add_argument("--ping-timeout", type=positive, default=30, help="seconds")
    parser.add_argument(
        "--close-timeout", type=positive, default=10,
        help="seconds the app gets to finish after a disconnect or a SIGTERM",
    )  # fmt: skip
    parser.add_argument(
        "--websocket-timeout", type=positive, default=86400,
        help="daphne only: seconds a WebSocket may stay connected",
    )  # fmt: skip
    parser.add_argument(
        "--connect-timeout", type=positive, default=20,
        help="daphne only: seconds a WebSocket handshake may take",
    )  # fmt: skip
    return parser.parse_args(argv)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def frame_size() -> int:
    """The largest frame the app accepts, from its own settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djchat.settings")
    from django.conf import settings

    from chat.protocol import max_frame_size

    return max_frame_size(settings.CHAT_MAX_MESSAGE_LENGTH)


def uvicorn_options(options: argparse.Namespace, size: int) -> dict:
    """uvicorn.run()'s keyword arguments for these options."""
    return {
        "host": options.bind,
        "port": options.port,
        "loop": "asyncio",
        "http": "h11",
        "ws_max_size": size,
        "ws_ping_interval": options.ping_interval,
        "ws_ping_timeout": options.ping_timeout,
        "ws_per_message_deflate": False,
        "lifespan": "off",
        "proxy_headers": True,
        "forwarded_allow_ips": "*",
        "server_header": False,
        "timeout_graceful_shutdown": options.close_timeout,
    }


def daphne_args(options: argparse.Namespace, size: int) -> list[str]:
    """daphne's command line for these options."""
    return [
        f"--bind={options.bind}",
        f"--port={options.port}",
        "--proxy-headers",
        f"--websocket-max-frame-size={size}",
        f"--websocket-max-message-size={size}",
        f"--ping-interval={options.ping_interval}",
        f"--ping-timeout={options.ping_timeout}",
        f"--application-close-timeout={options.close_timeout}",
        f"--websocket_timeout={options.websocket_timeout}",
        f"--websocket_connect_timeout={options.connect_timeout}",
        APPLICATION,
    ]


def run_uvicorn(options: argparse.Namespace, size: int) -> None:
    import uvicorn

    uvicorn.run(APPLICATION, **uvicorn_options(options, size), ws=uvicorn_websocket_protocol())


def uvicorn_websocket_protocol() -> type:
    """uvicorn's wsproto protocol, closing a message over the limit as the RFC (and daphne) do, and
    raising an OSError, not a RuntimeError, for a send after its close frame."""
    from uvicorn.protocols.utils import ClientDisconnected
    from uvicorn.protocols.websockets import wsproto_impl
    from wsproto.events import CloseConnection, TextMessage

    class WSProtocol(wsproto_impl.WSProtocol):
        """uvicorn closes the socket right after its 1009 close frame. The client is still sending
        the big message, and the kernel answers the unread rest with a reset, which destroys the
        close frame on its way: the client sees a dropped connection. Here the 1009 goes out,
        what the client still sends is read and dropped (uvicorn ignores all but a close once it
        has sent its own), and the socket closes on the client's close or after uvicorn's close
        timeout, as for any close the app asks for."""

        def handle_message(self, event) -> None:
            data = event.data.encode() if isinstance(event, TextMessage) else event.data
            if self.buffer.length + len(data) <= self.buffer.max_length:
                super().handle_message(event)
                return
            self.buffer.clear()
            self.close_sent = True
            reason = f"Message exceeds the maximum size ({self.buffer.max_length} bytes)"
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1009, "reason": reason})
            if not self.transport.is_closing():
                self.transport.write(self.conn.send(CloseConnection(code=1009, reason=reason)))
                self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

        async def send(self, message) -> None:
            """Once uvicorn has sent its close frame (the app's close, the 1009 above), it raises a
            RuntimeError for a send until the socket is gone. A broadcast can reach a consumer in
            that time, before it reads the websocket.disconnect: it gets ClientDisconnected here,
            the OSError the ASGI spec asks for on a send to a closed connection (RFC 6455 allows
            no data after a close frame). A second close is ignored, as daphne does: the close
            is under way, and a connection sends one close frame."""
            if self.close_sent and not self.response_started:  # not an HTTP rejection
                if message["type"] == "websocket.close":
                    return
                if message["type"] == "websocket.send":
                    raise ClientDisconnected
            await super().send(message)

    return WSProtocol


def run_daphne(options: argparse.Namespace, size: int) -> None:
    import daphne.server
    from daphne.cli import CommandLineInterface

    class WebSocketFactory(daphne.server.WebSocketFactory):
        """daphne's factory, failing connections with a close frame, not a dropped socket."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # daphne's Server.run() sets its own options after this; it never passes failByDrop.
            self.setProtocolOptions(failByDrop=False)

    # daphne's Server builds its factory from this module attribute; there is no other hook.
    daphne.server.WebSocketFactory = WebSocketFactory
    CommandLineInterface().run(daphne_args(options, size))


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    # The settings keep this process's database connection (djchat.config.database).
    os.environ["DJCHAT_ASGI_PROCESS"] = "true"
    run = run_uvicorn if options.server == "uvicorn" else run_daphne
    run(options, frame_size())


if __name__ == "__main__":
    main()
