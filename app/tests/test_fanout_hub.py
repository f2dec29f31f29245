"""The fan-out hub (chat.services.fanout): one Redis subscription per process and room, every
member's messages in order without gaps, and a hub that outlives Redis restarts.

The in-process tests are one "process" (one event loop, one hub); the daphne tests check the same
against real processes, where a socket is a TCP connection that may stop reading.
"""

import asyncio
import base64
import contextlib
import json
import os
import socket
import time

import pytest
import redis
from channels.db import database_sync_to_async
from django.test.utils import override_settings
from websockets.sync.client import connect

from chat.services import fanout, latest
from chat.services.messages import post_message
from chat.services.redis_client import close_client
from djchat import asgi_server, config
from tests import servers

pytestmark = pytest.mark.django_db(transaction=True)

post = database_sync_to_async(post_message)


def subscribers(redis_server, room: str) -> int:
    client = redis.Redis(port=redis_server.port, password=redis_server.password)
    try:
        return client.pubsub_numsub(fanout.channel(room))[0][1]
    finally:
        client.close()


def subscribed_rooms(redis_server) -> set[str]:
    client = redis.Redis(port=redis_server.port, password=redis_server.password)
    try:
        channels = client.pubsub_channels(f"{fanout.CHANNEL_PREFIX}*")
    finally:
        client.close()
    return {name.decode()[len(fanout.CHANNEL_PREFIX) :] for name in channels}


async def eventually(condition, timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)


async def message_ids(member, count: int, timeout: float = 10) -> list[int]:
    return [(await member.receive_type("message", timeout))["id"] for _ in range(count)]


# --- one subscription per process and room ------------------------------------------------------


async def test_a_process_subscribes_once_per_room_however_many_members(chat, room, redis_server):
    other = f"{room}-other"
    for n in range(4):
        await chat.join(room, f"member-{n}")
    first_elsewhere = await chat.join(other, "carol")
    await chat.join(other, "dave")

    assert subscribers(redis_server, room) == 1
    assert subscribers(redis_server, other) == 1
    assert subscribed_rooms(redis_server) == {room, other}
    assert fanout.hub().member_count(room) == 4

    await first_elsewhere.close()
    assert subscribers(redis_server, other) == 1, "dave is still there"


async def test_the_last_member_leaving_unsubscribes_the_room(chat, room, redis_server):
    members = [await chat.join(room, f"member-{n}") for n in range(3)]
    for member in members:
        await member.close()

    await eventually(lambda: subscribers(redis_server, room) == 0, what="UNSUBSCRIBE")
    assert fanout.hub().member_count(room) == 0

    again = await chat.join(room, "back")  # and a later join subscribes again
    assert subscribers(redis_server, room) == 1
    sent = await again.say("still works")
    assert sent["id"] == 1


# --- order without gaps -------------------------------------------------------------------------


async def test_every_member_of_several_rooms_gets_every_message_in_order(chat, room, settings):
    settings.CHAT_RATE_LIMIT_MESSAGES = 1000
    settings.CHAT_ADDRESS_RATE_LIMIT_MESSAGES = 1000
    rooms = [f"{room}-{n}" for n in range(3)]
    members = {name: [await chat.join(name, f"m{n}") for n in range(3)] for name in rooms}
    per_sender = 10

    # Every member sends at once: the room's ids are handed out in commit order, and the
    # broadcasts of different senders may reach the hub in any order.
    for name in rooms:
        for n, member in enumerate(members[name]):
            for i in range(per_sender):
                await member.send({"type": "message", "text": f"{name} {n}.{i}"})

    total = per_sender * 3
    for name in rooms:
        for member in members[name]:
            received = [await member.receive_type("message", 15) for _ in range(total)]
            assert [frame["id"] for frame in received] == list(range(1, total + 1))
            assert {frame["room"] for frame in received} == {name}
            assert await member.receives_nothing(0.1)


async def test_a_member_leaving_mid_stream_does_not_disturb_the_others(chat, room, settings):
    settings.CHAT_RATE_LIMIT_MESSAGES = 1000
    sender = await chat.join(room, "sender")
    stays = await chat.join(room, "stays")
    leaves = await chat.join(room, "leaves")

    for i in range(20):
        await sender.send({"type": "message", "text": f"number {i}"})
        if i == 7:
            await leaves.close()

    assert await message_ids(stays, 20) == list(range(1, 21))
    assert await message_ids(sender, 20) == list(range(1, 21))
    assert fanout.hub().member_count(room) == 2


async def test_a_member_whose_delivery_fails_does_not_stop_the_others(chat, room, monkeypatch):
    alice = await chat.join(room, "alice")
    bob = await chat.join(room, "bob")
    await alice.presence_becomes(["alice", "bob"])
    members = list(fanout.hub().rooms[room].members)

    async def broken(message_id, event):
        raise RuntimeError("this member's socket is broken")

    monkeypatch.setattr(members[0], "hub_message", broken)
    sent = await bob.say("to whoever can hear")

    assert sent["id"] == 1
    assert await alice.receives_nothing(0.3)  # alice is the broken one


async def test_a_message_is_encoded_once_for_all_members(chat, room, monkeypatch):
    members = [await chat.join(room, f"m{n}") for n in range(5)]
    encoded = []
    encode = fanout.encode

    def counting_encode(frame):
        encoded.append(frame["type"])
        return encode(frame)

    monkeypatch.setattr(fanout, "encode", counting_encode)
    await members[0].say("once")
    for member in members[1:]:
        await member.receive_type("message")

    assert encoded.count("message") == 1


# --- Redis going away -------------------------------------------------------------------------


async def test_the_hub_resubscribes_when_redis_drops_its_connection(chat, room, redis_server):
    alice = await chat.join(room, "alice")
    bob = await chat.join(room, "bob")
    # Stored, and published while the hub was cut off (so to nobody): the resubscription repairs
    # it, long before the next heartbeat.
    missed = await post(room, "carol", "while you were away")
    await latest.record(room, missed["id"])
    client = redis.Redis(port=redis_server.port, password=redis_server.password)
    try:
        assert client.client_kill_filter(_type="pubsub") >= 1
    finally:
        client.close()

    assert await alice.receive_type("message", timeout=5) == missed
    await eventually(lambda: subscribers(redis_server, room) == 1, what="the resubscription")
    sent = await bob.say("after the reconnect")
    assert (await alice.receive_type("message"))["id"] == sent["id"] == missed["id"] + 1


def redis_on(port: int, password: str, workdir):
    """A redis-server on the same port each time (Redis restarted)."""
    return servers.redis_server(workdir, port=port, password=password)


async def test_a_redis_restart_is_survived_and_the_gap_repaired(chat, room, tmp_path, settings):
    settings.CHAT_PRESENCE_TTL = 2  # heartbeats every 2/3 s refill presence after the restart
    port, password = servers.free_port(), "restart-test"
    url = f"redis://127.0.0.1:{port}/0"
    own_redis = override_settings(
        REDIS_URL=url, REDIS_PASSWORD=password, CACHES=config.redis_cache(url, password)
    )
    with own_redis:
        with redis_on(port, password, tmp_path):
            alice = await chat.join(room, "alice")
            bob = await chat.join(room, "bob")
            # Bob's join has ended (its presence announced) before Redis goes away: a join that
            # loses Redis half-way closes its socket, which is not what this test is about.
            await alice.presence_becomes(["alice", "bob"])
            await alice.say("before")
            await bob.receive_type("message")
        # Redis is down: this message is stored but can be announced to nobody.
        missed = await post(room, "carol", "during the outage")
        with redis_on(port, password, tmp_path):
            await eventually(
                lambda: _numsub(port, password, room) == 1, timeout=10, what="resubscription"
            )
            sent = await bob.say("after the restart")
            received = [await alice.receive_type("message") for _ in range(2)]
            assert [frame["id"] for frame in received] == [missed["id"], sent["id"]]
            await alice.presence_becomes(["alice", "bob"])
            await chat.close_all()
            await fanout.close_hub()
            await close_client()


def _numsub(port: int, password: str, room: str) -> int:
    client = redis.Redis(port=port, password=password)
    try:
        return client.pubsub_numsub(fanout.channel(room))[0][1]
    except redis.ConnectionError:
        return 0
    finally:
        client.close()


# --- real asgi processes, under each server ------------------------------------------------------


@pytest.fixture(scope="module", params=asgi_server.SERVERS)
def asgi_processes(request, redis_server, tmp_path_factory):
    """Two asgi processes (no gunicorn) of one server, with limits a flood of test messages stays
    under."""
    workdir = tmp_path_factory.mktemp(f"fanout-{request.param}")
    env = servers.app_env(
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=f"sqlite:///{workdir}/db.sqlite3",
        DJANGO_DEBUG="true",  # the debug key: no secret to write
        REDIS_URL=redis_server.url,
        REDIS_PASSWORD=redis_server.password,
        CHAT_RATE_LIMIT_MESSAGES="10000",
        CHAT_ADDRESS_RATE_LIMIT_MESSAGES="10000",
        # A heartbeat every 10 minutes: what reaches a client here came through the hub, not
        # through the heartbeat's repair.
        CHAT_PRESENCE_TTL="1800",
    )
    migrated = servers.manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    with contextlib.ExitStack() as running:
        yield [
            running.enter_context(servers.asgi_process(env, workdir / f"d{n}.log", request.param))
            for n in (1, 2)
        ]


def ws_connect(server, room: str, nick: str):
    return connect(
        f"ws://127.0.0.1:{server.port}/ws/chat/{room}/?nick={nick}",
        origin=server.base_url,
        open_timeout=10,
    )


def receive_messages(ws, count: int, timeout: float = 20) -> list[dict]:
    received = []
    while len(received) < count:
        frame = json.loads(ws.recv(timeout=timeout))
        if frame["type"] == "message":
            received.append(frame)
    return received


def test_each_asgi_process_subscribes_once_per_room(asgi_processes, room, redis_server):
    first, second = asgi_processes
    with contextlib.ExitStack() as sockets:
        for n in range(3):
            sockets.enter_context(ws_connect(first, room, f"a{n}"))
        for n in range(2):
            sockets.enter_context(ws_connect(second, room, f"b{n}"))
        assert subscribers(redis_server, room) == 2


def slow_reader(server, room: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, filled at once
    raw.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            f"GET /ws/chat/{room}/?nick=slow HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {server.base_url}\r\n\r\n"
        ).encode()
    )
    raw.settimeout(10)
    assert b" 101 " in raw.recv(1024).split(b"\r\n", 1)[0]
    return raw


def test_a_client_that_stops_reading_does_not_delay_the_others(asgi_processes, room):
    server = asgi_processes[0]
    stalled = slow_reader(server, room)
    try:
        with ws_connect(server, room, "fast") as fast, ws_connect(server, room, "sender") as sender:
            # 5.3 MB for the stalled client: beyond what the kernel buffers for it (a send buffer
            # grows to net.ipv4.tcp_wmem's 4 MiB), so the server's own buffer fills too, and
            # uvicorn's send waits for the socket to drain (its flow control).
            count = 700
            text = "\N{GRINNING FACE}" * 1900  # 4 bytes each in UTF-8
            started = time.monotonic()
            for i in range(count):
                frame = {"type": "message", "text": f"{i} {text}"}
                sender.send(json.dumps(frame, ensure_ascii=False))
            received = receive_messages(fast, count)
            elapsed = time.monotonic() - started
    finally:
        stalled.close()  # with frames unread: the server sees a reset
    time.sleep(0.5)

    assert [frame["id"] for frame in received] == list(range(1, count + 1))
    # The time to store 700 messages and relay them, not a wait on the stalled socket.
    assert elapsed < 15, elapsed
    assert "Traceback" not in server.output(), server.output()
