"""The asgi process type: daphne, with WebSocket failures answered by a close frame and frames
limited to what the app's longest message needs.

Run as: python -m djchat.asgi_server -b 0.0.0.0 -p 8001 --proxy-headers djchat.asgi:application
(every daphne option works as it does for the `daphne` command).

daphne refuses a frame over its size limit and a protocol violation through autobahn, whose
default is to drop the TCP connection without a close frame ("failByDrop"). A client cannot tell
that from a network failure, so it reconnects and sends the same frame again. With failByDrop off,
autobahn sends the close frame the RFC asks for (1009 "message too big", 1002 "protocol error")
and the client knows why it was closed.

daphne's own limits are 1 MiB per frame and per message, which it buffers before the app sees a
byte; the app needs chat.protocol.max_frame_size(CHAT_MAX_MESSAGE_LENGTH) (13,024 bytes for the
default 2,000 characters), so both limits are set to that unless given on the command line.
"""

import os
import sys

import daphne.server
from daphne.cli import CommandLineInterface

from chat.protocol import max_frame_size

FRAME_LIMIT_OPTIONS = ("--websocket-max-frame-size", "--websocket-max-message-size")


class WebSocketFactory(daphne.server.WebSocketFactory):
    """daphne's factory, failing connections with a close frame instead of a dropped socket."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # daphne's Server.run() sets its own options after this; it never passes failByDrop.
        self.setProtocolOptions(failByDrop=False)


def frame_limits(args: list[str]) -> list[str]:
    """daphne's frame and message limits from the app's settings, for those `args` leave unset."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djchat.settings")
    from django.conf import settings

    size = max_frame_size(settings.CHAT_MAX_MESSAGE_LENGTH)
    given = {arg.split("=", 1)[0] for arg in args}
    return [f"{option}={size}" for option in FRAME_LIMIT_OPTIONS if option not in given]


def main() -> None:
    # daphne's Server builds its factory from this module attribute; there is no other hook.
    daphne.server.WebSocketFactory = WebSocketFactory
    args = sys.argv[1:]
    CommandLineInterface().run([*frame_limits(args), *args])


if __name__ == "__main__":
    main()
