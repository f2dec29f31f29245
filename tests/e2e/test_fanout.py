"""Several asgi replicas behind nginx: clients on different replicas see each other's messages
(fan-out through the Redis channel layer) and the same list of who is online."""

from __future__ import annotations

import time

import pytest

from chatclient import SyncChatClient
from helpers import Stack, unique


def expected_replicas(stack: Stack) -> int:
    return int(stack.expect.get("asgi_replicas") or len(stack.asgi_hostnames()))


def clients_on_two_replicas(
    stack: Stack, room: str, attempts: int = 12
) -> tuple[SyncChatClient, ...]:
    """Connect until two members of `room` are served by different asgi containers; the extra
    connections are closed again."""
    first = stack.chat(room, nick="alice")
    extra: list[SyncChatClient] = []
    try:
        for _ in range(attempts):
            candidate = stack.chat(room, nick="bob")
            if candidate.served_by != first.served_by:
                return first, candidate
            extra.append(candidate)
    finally:
        for client in extra:
            client.close()
    first.close()
    pytest.fail(
        f"{attempts + 1} WebSockets all landed on {first.served_by}; nginx should balance /ws/ "
        f"across the asgi replicas {sorted(stack.asgi_hostnames())} {stack.logs_hint('nginx')}"
    )


@pytest.fixture
def replicated(stack: Stack) -> Stack:
    if expected_replicas(stack) < 2:
        pytest.skip("needs 2 or more asgi replicas")
    return stack


# Fan-out through the Redis channel layer takes milliseconds. The app also repairs broadcasts a
# connection missed, from the database, on its heartbeat (every CHAT_PRESENCE_TTL / 3 seconds):
# without a working channel layer messages would still arrive, only late. So each message must
# arrive within LIVE seconds, and each member receives one every half heartbeat period: two
# such messages cannot both fall in the LIVE window before a heartbeat, so riding on heartbeats
# fails the test however the heartbeats are phased.
LIVE = 1.5


def heartbeat_period(stack: Stack) -> float:
    return float(stack.expect.get("chat_presence_ttl") or 30) / 3


def test_clients_on_different_replicas_exchange_messages_live(replicated: Stack, room: str):
    spacing = heartbeat_period(replicated) / 4  # each member receives every 2 x spacing
    assert 2 * spacing > LIVE, f"heartbeat period {heartbeat_period(replicated)} s is too short"
    alice, bob = clients_on_two_replicas(replicated, room)
    with alice, bob:
        last_id = 0
        for turn in range(4):
            sender, receiver = (alice, bob) if turn % 2 == 0 else (bob, alice)
            text = unique(f"turn{turn}")
            started = time.monotonic()
            sent = sender.say(text)
            try:
                received = receiver.wait_for_message(text, timeout=LIVE)
            except AssertionError as missing:
                raise AssertionError(
                    f"{text!r} from {sender.served_by} did not reach {receiver.served_by} "
                    f"within {LIVE} s: no live fan-out between replicas through the channel "
                    f"layer {replicated.logs_hint()}\n{missing}"
                ) from None
            assert received == sent, "both members must get the same MESSAGE object"
            assert sent["nick"] == ("alice" if sender is alice else "bob")
            assert sent["id"] > last_id, "ids increase per room"
            last_id = sent["id"]
            time.sleep(max(0.0, spacing - (time.monotonic() - started)))


def test_presence_is_the_same_on_every_replica(replicated: Stack, room: str):
    alice, bob = clients_on_two_replicas(replicated, room)
    with alice:
        with bob:
            alice.wait_for_presence(["alice", "bob"])
            bob.wait_for_presence(["alice", "bob"])
        # bob left from the other replica: alice's replica hears it through Redis.
        alice.wait_for_presence(["alice"])


def test_nginx_balances_websockets_over_every_replica(stack: Stack, room: str):
    replicas = expected_replicas(stack)
    hosts = stack.asgi_hostnames()
    assert len(hosts) == replicas, f"{len(hosts)} asgi containers running, expected {replicas}"
    seen: set[str] = set()
    for attempt in range(6 * replicas):
        with stack.chat(room, nick=f"probe{attempt}") as client:
            seen.add(client.served_by)
        if seen == hosts:
            return
    pytest.fail(
        f"after {6 * replicas} WebSockets only {sorted(seen)} of {sorted(hosts)} answered "
        f"{stack.logs_hint('nginx')}"
    )
