"""The floor of the fan-out benchmark: what Python itself needs to relay the chat.

A plain asyncio `websockets` server, one process, speaking as much of the chat protocol
(app/README.md) as the bench's clients use: the handshake on /ws/chat/<room>/?nick=..., a history
frame first, then every message a member sends, numbered 1, 2, 3, ... per room, encoded once and
written to every member of the room (the sender too) with `websockets.broadcast`. No database, no
Redis, no presence, no limits: the cost of relaying and nothing else. bench/run.py runs it with
the same load as the stack and prints the stack's figures as ratios to it (issue 16).

    python bench/floor.py --port 18099        # until SIGTERM / SIGINT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
from collections import defaultdict
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve

SERVED_BY = f"floor-{socket.gethostname()}"
MAX_FRAME = 16 * 1024  # the stack's own bound is about 13 KB


class Relay:
    def __init__(self) -> None:
        self.members: dict[str, set[ServerConnection]] = defaultdict(set)
        self.last_id: dict[str, int] = defaultdict(int)

    async def handle(self, connection: ServerConnection) -> None:
        parts = urlsplit(connection.request.path)
        segments = parts.path.strip("/").split("/")
        if len(segments) != 3 or segments[:2] != ["ws", "chat"]:
            await connection.close(1008, "not a chat room")
            return
        room = segments[2]
        nick = (parse_qs(parts.query).get("nick") or ["anonymous"])[-1]
        members = self.members[room]
        await connection.send(
            json.dumps({"type": "history", "room": room, "served_by": SERVED_BY, "messages": []})
        )
        members.add(connection)
        try:
            async for data in connection:
                try:
                    frame = json.loads(data)
                except ValueError:
                    continue
                if frame.get("type") != "message":
                    continue
                self.last_id[room] += 1
                message = {
                    "type": "message",
                    "id": self.last_id[room],
                    "room": room,
                    "nick": nick,
                    "account": False,
                    "text": str(frame.get("text", "")),
                }
                broadcast(members, json.dumps(message, separators=(",", ":")))
        finally:
            members.discard(connection)
            if not members:
                del self.members[room]


async def main(port: int) -> None:
    relay = Relay()
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(
        relay.handle,
        "127.0.0.1",
        port,
        max_size=MAX_FRAME,
        compression=None,  # the bench's clients ask for none from the stack either
        backlog=4096,
    ):
        print(f"floor relay on ws://127.0.0.1:{port}", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18099)
    asyncio.run(main(parser.parse_args().port))
