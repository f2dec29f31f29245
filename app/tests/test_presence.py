"""Presence in Redis: shared by every consumer, updated on join and leave, swept when stale."""

import asyncio

import pytest
import redis.asyncio

from chat.services import presence
from chat.services import redis_client as redis_client_module

pytestmark = pytest.mark.django_db(transaction=True)


async def test_presence_is_shared_by_members_and_updated_when_one_leaves(chat, room):
    alice = await chat.join(room, "alice")
    assert (await alice.receive())["online"] == ["alice"]

    bob = await chat.join(room, "bob")
    assert await bob.receive() == {"type": "presence", "online": ["alice", "bob"]}
    await alice.presence_becomes(["alice", "bob"])

    await bob.close()
    await alice.presence_becomes(["alice"])


async def test_members_are_told_who_came_and_went_not_the_whole_list(chat, room):
    members = [await chat.join(room, f"member-{n}") for n in range(5)]
    for member in members:
        await member.presence_becomes([f"member-{n}" for n in range(5)])

    newcomer = await chat.join(room, "newcomer")
    told_of_join = [await member.receive() for member in members]
    await newcomer.close()
    told_of_leave = [await member.receive() for member in members]

    joined = {"type": "presence_change", "joined": ["newcomer"], "left": []}
    left = {"type": "presence_change", "joined": [], "left": ["newcomer"]}
    assert told_of_join == [joined] * 5
    assert told_of_leave == [left] * 5


async def test_online_list_is_sorted_case_insensitively(chat, room):
    await chat.join(room, "bob")
    await chat.join(room, "Carol")
    alice = await chat.join(room, "alice")

    await alice.presence_becomes(["alice", "bob", "Carol"])


async def test_a_nick_open_in_two_tabs_is_listed_once_until_both_leave(chat, room):
    tab1 = await chat.join(room, "alice")
    bob = await chat.join(room, "bob")
    await bob.presence_becomes(["alice", "bob"])
    tab2 = await chat.join(room, "alice")
    assert await bob.receives_nothing(0.3), "alice was online already"

    await tab1.close()
    assert await bob.receives_nothing(0.3), "the online list did not change"
    assert await presence.online(room) == ["alice", "bob"]

    await tab2.close()
    await bob.presence_becomes(["bob"])


async def test_member_of_a_dead_process_is_swept_within_the_ttl(chat, room, settings):
    settings.CHAT_PRESENCE_TTL = 2
    # An entry nobody refreshes: what a daphne process killed mid-connection leaves behind.
    await presence.touch(room, "specific.dead-process!gone", "ghost")

    alice = await chat.join(room, "alice")

    assert (await alice.receive_type("presence"))["online"] == ["alice", "ghost"]
    swept = await alice.receive_type("presence_change", timeout=settings.CHAT_PRESENCE_TTL + 3)
    assert swept == {"type": "presence_change", "joined": [], "left": ["ghost"]}


async def test_heartbeats_keep_a_live_member_online_past_the_ttl(chat, room, settings):
    settings.CHAT_PRESENCE_TTL = 2
    await chat.join(room, "alice")

    await asyncio.sleep(settings.CHAT_PRESENCE_TTL * 1.5)
    bob = await chat.join(room, "bob")

    assert (await bob.receive_type("presence"))["online"] == ["alice", "bob"]


async def test_presence_key_expires_and_empties_so_it_never_only_grows(
    chat, room, settings, redis_server
):
    settings.CHAT_PRESENCE_TTL = 10
    client = redis.asyncio.Redis(port=redis_server.port, password=redis_server.password)
    key = presence.presence_key(room)
    alice = await chat.join(room, "alice")
    await alice.receive_type("presence")  # the entry is written after the history frame

    ttl_while_occupied = await client.ttl(key)
    await alice.close()
    exists_after_leaving = await client.exists(key)
    await client.aclose()

    assert 0 < ttl_while_occupied <= 2 * settings.CHAT_PRESENCE_TTL
    assert exists_after_leaving == 0


async def test_a_burst_of_heartbeats_beyond_the_pool_waits_instead_of_failing(room):
    # Thousands of sockets of one daphne process heartbeat at once; the client's pool holds
    # POOL_CONNECTIONS, and the rest must queue for a connection rather than raise.
    burst = 4 * redis_client_module.POOL_CONNECTIONS
    touches = [presence.touch(room, f"channel-{n}", f"nick-{n}") for n in range(burst)]

    snapshots = await asyncio.gather(*touches)

    assert len(snapshots[-1].online) == burst
    await redis_client_module.close_client()
