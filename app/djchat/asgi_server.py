"""The asgi process type: daphne, with WebSocket failures answered by a close frame.

Run as: python -m djchat.asgi_server -b 0.0.0.0 -p 8001 --proxy-headers djchat.asgi:application
(every daphne option works as it does for the `daphne` command).

daphne refuses a frame over its size limit (1 MiB by default, --websocket_max_frame_size) and a
protocol violation through autobahn, whose default is to drop the TCP connection without a close
frame ("failByDrop"). A client cannot tell that from a network failure, so it reconnects and sends
the same frame again. With failByDrop off, autobahn sends the close frame the RFC asks for (1009
"message too big", 1002 "protocol error") and the client knows why it was closed.
"""

import daphne.server
from daphne.cli import CommandLineInterface


class WebSocketFactory(daphne.server.WebSocketFactory):
    """daphne's factory, failing connections with a close frame instead of a dropped socket."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # daphne's Server.run() sets its own options after this; it never passes failByDrop.
        self.setProtocolOptions(failByDrop=False)


def main() -> None:
    # daphne's Server builds its factory from this module attribute; there is no other hook.
    daphne.server.WebSocketFactory = WebSocketFactory
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
