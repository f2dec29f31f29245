"""The WebSocket protocol, frame by frame, against the full ASGI application and a real Redis."""

import socket
from datetime import UTC, datetime

import pytest
from channels.db import database_sync_to_async

from chat.models import Message, Room
from chat.protocol import ErrorCode, ProtocolError, parse_client_frame

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE_KEYS = {"type", "id", "room", "nick", "account", "text", "ts"}


async def test_first_frame_is_history_naming_room_and_serving_host(chat, room):
    alice = await chat.join(room, "alice")

    assert alice.history == {
        "type": "history",
        "room": room,
        "served_by": socket.gethostname(),
        "messages": [],
    }


async def test_presence_frame_follows_history_and_lists_the_new_member(chat, room):
    alice = await chat.join(room, "alice")

    assert await alice.receive() == {"type": "presence", "online": ["alice"]}


async def test_message_comes_back_to_the_sender_as_a_message_frame(chat, room):
    alice = await chat.join(room, "alice")
    await alice.receive_type("presence")

    await alice.send({"type": "message", "text": "hello"})
    frame = await alice.receive()

    assert set(frame) == MESSAGE_KEYS
    assert frame["type"] == "message"
    assert isinstance(frame["id"], int)
    assert (frame["room"], frame["nick"], frame["text"]) == (room, "alice", "hello")
    assert frame["ts"].endswith("Z")
    sent_at = datetime.fromisoformat(frame["ts"])
    assert sent_at.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - sent_at).total_seconds()) < 60


async def test_message_ids_increase_within_a_room(chat, room):
    alice = await chat.join(room, "alice")

    ids = [(await alice.say(f"line {n}"))["id"] for n in range(3)]

    assert ids[0] < ids[1] < ids[2]


async def test_ping_is_answered_with_pong(chat, room):
    alice = await chat.join(room, "alice")
    await alice.receive_type("presence")

    await alice.send({"type": "ping"})

    assert await alice.receive() == {"type": "pong"}


async def test_html_and_script_payload_is_stored_and_returned_verbatim(chat, room, client):
    payload = '<script>alert("x")</script><b>bold</b> & <img src=x onerror=alert(1)>'
    alice = await chat.join(room, "alice")

    echoed = await alice.say(payload)

    stored = await database_sync_to_async(Message.objects.get)(room__name=room, seq=echoed["id"])
    from_api = await database_sync_to_async(client.get)(f"/api/rooms/{room}/messages")
    assert echoed["text"] == payload
    assert stored.text == payload
    assert from_api.json()[-1]["text"] == payload


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param("{not json", "bad_json", id="not-json"),
        pytest.param("[1, 2]", "bad_json", id="json-but-not-an-object"),
        pytest.param('{"type": "shout", "text": "hi"}', "bad_type", id="unknown-type"),
        pytest.param('{"text": "hi"}', "bad_type", id="missing-type"),
        pytest.param('{"type": "message", "text": 42}', "bad_type", id="text-not-a-string"),
        pytest.param('{"type": "message"}', "bad_type", id="text-missing"),
        pytest.param('{"type": "message", "text": ""}', "empty", id="empty-text"),
        pytest.param('{"type": "message", "text": " \\n\\t "}', "empty", id="blank-text"),
        pytest.param('{"type": "message", "text": "' + "x" * 11 + '"}', "too_long", id="long"),
        pytest.param('{"type": "message", "text": "' + "x" * 200_000 + '"}', "too_long", id="huge"),
        pytest.param('{"type": "message", "text": "a \\ud800 b"}', "bad_json", id="lone-surrogate"),
    ],
)
async def test_bad_frame_gets_error_code_and_connection_stays_open(
    chat, room, settings, frame, code
):
    settings.CHAT_MAX_MESSAGE_LENGTH = 10
    alice = await chat.join(room, "alice")
    await alice.receive_type("presence")

    await alice.send(frame)
    error = await alice.receive()
    await alice.send({"type": "ping"})

    assert error["type"] == "error"
    assert error["code"] == code
    assert error["detail"]
    assert await alice.receive() == {"type": "pong"}
    assert await database_sync_to_async(Message.objects.count)() == 0


async def test_message_of_exactly_the_maximum_length_is_accepted(chat, room, settings):
    settings.CHAT_MAX_MESSAGE_LENGTH = 10

    alice = await chat.join(room, "alice")

    assert (await alice.say("é" * 10))["text"] == "é" * 10


async def test_binary_frame_gets_binary_not_supported(chat, room):
    alice = await chat.join(room, "alice")
    await alice.receive_type("presence")

    await alice.send(b'{"type": "message", "text": "hi"}')
    error = await alice.receive()
    await alice.send({"type": "ping"})

    assert (error["type"], error["code"]) == ("error", "binary_not_supported")
    assert await alice.receive() == {"type": "pong"}


async def test_messages_beyond_the_rate_limit_are_refused_and_not_stored(chat, room, settings):
    settings.CHAT_RATE_LIMIT_MESSAGES = 3
    settings.CHAT_RATE_LIMIT_SECONDS = 60
    alice = await chat.join(room, "alice")
    for n in range(3):
        await alice.say(f"allowed {n}")

    await alice.send({"type": "message", "text": "one too many"})
    error = await alice.receive_type("error")

    assert error["code"] == "rate_limited"
    texts = await database_sync_to_async(
        lambda: list(Message.objects.values_list("text", flat=True))
    )()
    assert texts == ["allowed 0", "allowed 1", "allowed 2"]


async def test_rate_limit_is_per_connection(chat, room, settings):
    settings.CHAT_RATE_LIMIT_MESSAGES = 1
    settings.CHAT_RATE_LIMIT_SECONDS = 60
    alice = await chat.join(room, "alice")
    bob = await chat.join(room, "bob")
    await alice.say("alice's one message")

    echoed = await bob.say("bob's one message")

    assert echoed["nick"] == "bob"


async def test_pings_do_not_count_against_the_rate_limit(chat, room, settings):
    settings.CHAT_RATE_LIMIT_MESSAGES = 1
    settings.CHAT_RATE_LIMIT_SECONDS = 60
    alice = await chat.join(room, "alice")
    await alice.receive_type("presence")
    for _ in range(5):
        await alice.send({"type": "ping"})
        assert await alice.receive() == {"type": "pong"}

    assert (await alice.say("still allowed"))["text"] == "still allowed"


def test_deeply_nested_json_within_the_length_limit_is_bad_json():
    # 3000 levels fit in 6 kB, under the 2000-character limit's frame bound, yet overflow the
    # parser's stack: that must be reported, not raised out of the consumer.
    frame = "[" * 3000 + "]" * 3000

    with pytest.raises(ProtocolError) as refused:
        parse_client_frame(frame, max_length=2000)

    assert refused.value.code == ErrorCode.BAD_JSON


async def test_a_message_that_would_create_a_room_past_the_maximum_is_refused(chat, settings):
    settings.CHAT_MAX_ROOMS = 2
    first, second = await chat.join("bounded-1", "amy"), await chat.join("bounded-2", "amy")
    await first.say("room one")
    await second.say("room two")
    third = await chat.join("bounded-3", "amy")

    await third.send({"type": "message", "text": "room three"})
    refused = await third.receive_type("error")
    still_open = await first.say("room one again")

    assert refused["code"] == "room_limit", refused
    assert "at most 2 rooms" in refused["detail"]
    assert await database_sync_to_async(Room.objects.filter(name="bounded-3").exists)() is False
    assert still_open["id"] == 2
