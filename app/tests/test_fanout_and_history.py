"""Fan-out to a room's members (chat.services.fanout), history on connect, and `since` resume."""

import pytest
import redis
from channels.db import database_sync_to_async

from chat import consumers
from chat.services import fanout, latest
from chat.services.messages import post_message
from chat.services.redis_client import close_client

pytestmark = pytest.mark.django_db(transaction=True)

post = database_sync_to_async(post_message)


async def seed(room: str, count: int) -> list[int]:
    return [(await post(room, "seed", f"message {n}"))["id"] for n in range(count)]


async def test_message_reaches_every_member_of_the_room_including_the_sender(chat, room):
    alice = await chat.join(room, "alice")
    bob = await chat.join(room, "bob")

    sent = await bob.say("hi all")
    received = await alice.receive_type("message")

    assert received == sent
    assert (sent["nick"], sent["text"]) == ("bob", "hi all")


async def test_message_does_not_reach_other_rooms(chat, room):
    alice = await chat.join(room, "alice")
    carol = await chat.join(f"{room}-elsewhere", "carol")
    await carol.receive_type("presence")

    await alice.say("only for this room")

    assert await carol.receives_nothing(0.3)


async def test_first_message_posted_while_a_member_joins_the_empty_room_reaches_it(
    chat, room, monkeypatch
):
    # The race the resilience suite caught: the history read finds the room empty, the first
    # message is stored before the join finishes, and the joiner must still receive it live.
    read_history = consumers.recent_messages
    stored = []

    async def read_then_someone_posts(*args, **kwargs):
        history = await read_history(*args, **kwargs)
        stored.append(await post(room, "bob", "first ever"))
        return history

    monkeypatch.setattr(consumers, "recent_messages", read_then_someone_posts)
    alice = await chat.join(room, "alice")
    # Bob's connection announces what it stored, as ChatConsumer.post does.
    await latest.record(room, stored[0]["id"])
    await fanout.publish_message(room, stored[0])

    assert alice.history["messages"] == []
    assert await alice.receive_type("message") == stored[0]


async def test_history_holds_the_last_50_messages_oldest_first(chat, room):
    ids = await seed(room, 60)

    alice = await chat.join(room, "alice")

    history = alice.history["messages"]
    assert [message["id"] for message in history] == ids[-50:]
    assert history[0]["text"] == "message 10"
    assert {message["room"] for message in history} == {room}


async def test_history_size_follows_the_setting(chat, room, settings):
    settings.CHAT_HISTORY_SIZE = 5
    ids = await seed(room, 8)

    alice = await chat.join(room, "alice")

    assert [message["id"] for message in alice.history["messages"]] == ids[-5:]


async def test_without_history_only_new_messages_are_sent(chat, room, settings):
    settings.CHAT_HISTORY_SIZE = 0
    await seed(room, 3)
    alice = await chat.join(room, "alice")

    await alice.send({"type": "message", "text": "fresh"})
    first = await alice.receive_type("message")

    assert alice.history["messages"] == []
    assert (first["id"], first["text"]) == (4, "fresh")


async def test_since_beyond_the_latest_id_does_not_mute_new_messages(chat, room):
    await seed(room, 2)
    alice = await chat.join(room, "alice", since=500)

    echoed = await alice.say("after a reset")

    assert echoed["id"] == 3


async def test_since_resume_returns_every_message_after_that_id(chat, room):
    ids = await seed(room, 70)

    alice = await chat.join(room, "alice", since=ids[9])

    assert [message["id"] for message in alice.history["messages"]] == ids[10:]


async def test_since_resume_is_capped_oldest_first_so_the_client_can_page_on(chat, room, settings):
    settings.CHAT_RESUME_LIMIT = 10
    ids = await seed(room, 25)

    alice = await chat.join(room, "alice", since=ids[2])

    assert [message["id"] for message in alice.history["messages"]] == ids[3:13]


async def test_since_at_the_latest_id_gives_an_empty_history(chat, room):
    ids = await seed(room, 3)

    alice = await chat.join(room, "alice", since=ids[-1])

    assert alice.history["messages"] == []


async def test_live_messages_after_a_resume_are_delivered_once(chat, room):
    ids = await seed(room, 3)
    alice = await chat.join(room, "alice", since=ids[0])

    echoed = await alice.say("after resume")
    await alice.send({"type": "ping"})

    assert echoed["id"] > ids[-1]
    assert await alice.receive_type("pong") == {"type": "pong"}


async def test_broadcasts_published_while_nobody_listened_are_recovered_by_since(chat, room):
    # Redis pub/sub keeps nothing for a process that is not subscribed: a client that was away
    # resumes from the last id it had, and the history holds the rest.
    alice = await chat.join(room, "alice")
    sent = [await alice.say(f"burst {n}") for n in range(7)]

    resumed = await chat.join(room, "came-back", since=sent[2]["id"])

    assert resumed.history["messages"] == sent[3:]


async def test_broadcasts_a_connection_missed_are_sent_from_history_before_the_next(chat, room):
    alice = await chat.join(room, "alice")
    bob = await chat.join(room, "bob")
    # Stored but never broadcast: what a full channel does to a member.
    await seed(room, 3)

    sent = await bob.say("after the gap")
    received = [await alice.receive_type("message") for _ in range(4)]

    assert [message["id"] for message in received] == [1, 2, 3, 4]
    assert received[-1] == sent
    assert await alice.receives_nothing(0.3)


async def test_a_missed_last_broadcast_arrives_with_the_next_heartbeat(chat, room, settings):
    settings.CHAT_PRESENCE_TTL = 2  # a heartbeat every 2/3 s
    alice = await chat.join(room, "alice")
    await alice.receive_type("presence")
    # Posted by another process whose broadcast to this member was dropped; nothing follows it.
    message = await post(room, "bob", "the last word")
    await latest.record(room, message["id"])

    assert await alice.receive_type("message", timeout=3) == message


async def test_the_latest_id_mirror_only_moves_forward_and_expires_with_the_room(
    room, settings, redis_server
):
    settings.CHAT_PRESENCE_TTL = 30
    await latest.record(room, 7)
    await latest.record(room, 5)  # a slower process reporting an older message

    assert await latest.latest(room) == 7
    client = redis.Redis(port=redis_server.port, password=redis_server.password)
    try:
        ttl = client.ttl(latest.latest_key(room))
    finally:
        client.close()
    assert 0 < ttl <= 60
    await close_client()


async def test_every_key_a_conversation_leaves_in_redis_expires(chat, room, redis_server):
    alice = await chat.join(room, "alice")
    bob = await chat.join(room, "bob")
    await alice.say("hello")
    await bob.say("hi")
    await alice.close()

    client = redis.Redis(port=redis_server.port, password=redis_server.password)

    def keys_without_ttl() -> dict[str, int]:
        return {key.decode(): ttl for key in client.keys("*") if (ttl := client.ttl(key)) < 0}

    try:
        assert client.ttl(latest.latest_key(room)) > 0
        forever = keys_without_ttl()
    finally:
        client.close()
    assert forever == {}
