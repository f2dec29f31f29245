"""Floods spread over many sockets, through nginx, as deployed (molecule/resilience/host_vars):
an account gets one message budget over all of its sockets and at most a number of sockets;
anonymous sockets of one address share that address's budget; someone else in the same room
(an account of their own, on the same address: every client here comes from this machine) keeps
chatting, every message in order. Every test prints what was tried and what was refused."""

from __future__ import annotations

import contextlib
import math
import time

import pytest
from websockets.exceptions import InvalidStatus

from chatclient import SyncChatClient
from helpers import Stack, logged_in_session, sign_up, unique

RATE_BURST = 10  # djchat_chat_rate_limit_messages (the role's default), per socket and per account
RATE_SECONDS = 10  # djchat_chat_rate_limit_seconds (the role's default)
ADDRESS_BUDGET = 100  # djchat_chat_address_rate_limit_messages in the resilience host_vars
MAX_SOCKETS = 20  # djchat_chat_account_max_sockets (the role's default)
FORM_PAUSE = 1.2  # under the resilience scenario's login limit of one POST a second


def logged_in_account(stack: Stack, role: str):
    username, password = sign_up(stack, role, pause=FORM_PAUSE)
    return logged_in_session(stack, username, password, pause=FORM_PAUSE)


@pytest.fixture(scope="module")
def flooder(stack: Stack):
    """An account with a logged-in session that floods, in every test."""
    session = logged_in_account(stack, "flooder")
    yield session
    session.close()


@pytest.fixture
def bystander(stack: Stack):
    """An account of each test's own, with a logged-in session: its message budget is whole
    however soon after the previous test this one runs."""
    session = logged_in_account(stack, "bystander")
    yield session
    session.close()


def flood(sockets: list[SyncChatClient], per_socket: int) -> tuple[int, int, float]:
    """Every socket sends `per_socket` messages as fast as it can: (accepted, refused, seconds)."""
    started = time.monotonic()
    sent = {id(socket): [unique("flood") for _ in range(per_socket)] for socket in sockets}
    for socket in sockets:
        for text in sent[id(socket)]:
            socket.send({"type": "message", "text": text})
    accepted = refused = 0
    for socket in sockets:
        own = set(sent[id(socket)])
        for _ in own:
            answer = socket.wait_for(
                lambda f, own=own: (
                    (f["type"] == "message" and f["text"] in own) or f["type"] == "error"
                ),
                timeout=30,
                what="an answer to a flood message",
            )
            if answer["type"] == "error":
                assert answer["code"] == "rate_limited", answer
                refused += 1
            else:
                accepted += 1
    return accepted, refused, time.monotonic() - started


def most_accepted(budget: int, seconds: float) -> int:
    """A bucket's burst plus what it refilled while the flood lasted (and one for rounding)."""
    return budget + math.ceil(seconds * budget / RATE_SECONDS) + 1


def bystander_chats(stack: Stack, room: str, session, count: int = 5) -> list[int]:
    """The bystander says `count` things; the ids of those it got back, in the order received."""
    with stack.chat(room, cookies=session.cookies) as bystander:
        texts = [unique("bystander") for _ in range(count)]
        return [bystander.say(text)["id"] for text in texts]


def test_an_account_flooding_over_many_sockets_gets_one_budget(
    stack: Stack, flooder, bystander, room
):
    with contextlib.ExitStack() as sockets:
        flooders = [
            sockets.enter_context(stack.chat(room, cookies=flooder.cookies)) for _ in range(8)
        ]
        accepted, refused, seconds = flood(flooders, RATE_BURST)
        ids = bystander_chats(stack, room, bystander)

    attempts = len(flooders) * RATE_BURST
    print(
        f"\naccount flood: {len(flooders)} sockets, {attempts} sent in {seconds:.1f} s, "
        f"{accepted} accepted, {refused} rate_limited; bystander: {len(ids)} of 5 accepted, "
        f"ids {ids}"
    )
    assert accepted + refused == attempts
    assert RATE_BURST <= accepted <= most_accepted(RATE_BURST, seconds), accepted
    assert ids == sorted(ids)
    assert len(ids) == 5


def test_anonymous_sockets_of_one_address_share_its_budget(stack: Stack, bystander, room):
    with contextlib.ExitStack() as sockets:
        flooders = [
            sockets.enter_context(stack.chat(room, nick=unique("anon")[:32])) for _ in range(15)
        ]
        accepted, refused, seconds = flood(flooders, RATE_BURST)
        ids = bystander_chats(stack, room, bystander)

    attempts = len(flooders) * RATE_BURST
    print(
        f"\nanonymous flood from one address: {len(flooders)} sockets under new nicks, "
        f"{attempts} sent in {seconds:.1f} s, {accepted} accepted, {refused} rate_limited; "
        f"bystander account: {len(ids)} of 5 accepted"
    )
    assert accepted + refused == attempts
    assert refused > 0
    assert accepted <= most_accepted(ADDRESS_BUDGET, seconds), accepted
    assert ids == sorted(ids)
    assert len(ids) == 5


def test_an_account_cannot_hold_more_sockets_than_its_maximum(
    stack: Stack, flooder, bystander, room
):
    cookies = flooder.cookies
    with contextlib.ExitStack() as sockets:
        held = [
            sockets.enter_context(stack.chat(f"{room}-{n % 4}", cookies=cookies))
            for n in range(MAX_SOCKETS)
        ]
        with pytest.raises(InvalidStatus) as refused:
            stack.chat(room, cookies=cookies)
        held.pop().close()
        # The closed socket stops counting as soon as its consumer has gone.
        deadline = time.monotonic() + 10
        while True:
            try:
                sockets.enter_context(stack.chat(room, cookies=cookies))
                break
            except InvalidStatus:
                assert time.monotonic() < deadline, "a socket slot never came free"
                time.sleep(0.2)
        ids = bystander_chats(stack, room, bystander)

    print(
        f"\nsockets of one account: {MAX_SOCKETS} held, the next answered "
        f"{refused.value.response.status_code}; one closed, one opened again; "
        f"bystander: {len(ids)} of 5 accepted"
    )
    assert refused.value.response.status_code == 403
    assert len(ids) == 5
