"""Limits across sockets (chat.services.quotas): one account or one address opening many sockets
gets no more than one sender's budget, and nobody else loses theirs."""

import asyncio

import pytest
import redis.asyncio

from chat.services import quotas

pytestmark = pytest.mark.django_db(transaction=True)


async def flood(sockets, per_socket: int) -> tuple[int, int]:
    """Every socket sends `per_socket` messages at once; (accepted, refused) over all of them."""
    for n, socket in enumerate(sockets):
        for i in range(per_socket):
            await socket.send({"type": "message", "text": f"flood {n}.{i}"})
    accepted = refused = 0
    for n, socket in enumerate(sockets):
        answered = 0  # its own messages echoed back, or refused
        while answered < per_socket:
            frame = await socket.receive()
            if frame["type"] == "error":
                assert frame["code"] == "rate_limited", frame
                refused += 1
                answered += 1
            elif frame["type"] == "message" and frame["text"].startswith(f"flood {n}."):
                accepted += 1
                answered += 1
    return accepted, refused


@pytest.fixture
def budget(settings):
    settings.CHAT_RATE_LIMIT_MESSAGES = 4
    settings.CHAT_RATE_LIMIT_SECONDS = 60
    settings.CHAT_ADDRESS_RATE_LIMIT_MESSAGES = 6
    return settings


async def test_an_account_gets_one_budget_over_all_of_its_sockets(
    chat, room, budget, session_cookie
):
    sockets = [await chat.join(room, cookie=session_cookie) for _ in range(3)]

    accepted, refused = await flood(sockets, per_socket=4)  # each socket's own bucket allows 4

    assert (accepted, refused) == (4, 8)


async def test_anonymous_sockets_of_one_address_share_its_budget_and_others_keep_theirs(
    chat, room, budget
):
    flooders = [await chat.join(room, f"flooder-{n}", address="198.51.100.7") for n in range(3)]
    bystander = await chat.join(room, "bystander", address="198.51.100.8")

    accepted, refused = await flood(flooders, per_socket=4)
    unaffected, _ = await flood([bystander], per_socket=4)

    assert (accepted, refused, unaffected) == (6, 6, 4)


async def test_the_refusal_says_which_limit(chat, room, budget):
    sockets = [await chat.join(room, f"nick-{n}", address="198.51.100.9") for n in range(2)]
    for n in range(4):
        await sockets[0].say(f"first {n}")
    for n in range(2):
        await sockets[1].say(f"second {n}")

    await sockets[1].send({"type": "message", "text": "one too many"})
    error = await sockets[1].receive_type("error")

    assert error["code"] == "rate_limited"
    assert "from one address" in error["detail"], error


async def test_an_account_cannot_open_more_than_its_maximum_of_sockets(
    chat, room, settings, session_cookie
):
    settings.CHAT_ACCOUNT_MAX_SOCKETS = 2
    first = await chat.join(room, cookie=session_cookie)
    await chat.join(f"{room}-b", cookie=session_cookie)

    third = await chat.open(room, cookie=session_cookie)
    await first.close()
    await asyncio.sleep(0.2)
    after_one_closed = await chat.open(room, cookie=session_cookie)

    assert (third.accepted, after_one_closed.accepted) == (False, True)


async def test_every_quota_key_expires(chat, room, budget, session_cookie, redis_server):
    signed = await chat.join(room, cookie=session_cookie)
    anonymous = await chat.join(room, "anon", address="198.51.100.10")
    await signed.say("signed")
    await anonymous.say("anonymous")

    client = redis.asyncio.Redis(port=redis_server.port, password=redis_server.password)
    keys = await client.keys("djchat:quota:*")
    ttls = {key.decode(): await client.ttl(key) for key in keys}
    await client.aclose()

    assert len(ttls) == 3, ttls  # the account's messages and sockets, the address's messages
    assert all(0 < ttl <= 2 * budget.CHAT_PRESENCE_TTL or 0 < ttl <= 60 for ttl in ttls.values())


async def test_a_bucket_refills_at_its_rate(budget, settings):
    settings.CHAT_RATE_LIMIT_MESSAGES = 2
    settings.CHAT_RATE_LIMIT_SECONDS = 1

    burst = [await quotas.message_refusal(42, "ignored") for _ in range(3)]
    await asyncio.sleep(0.6)  # one message every 0.5 s
    refilled = await quotas.message_refusal(42, "ignored")

    assert [refusal is None for refusal in burst] == [True, True, False]
    assert refilled is None
