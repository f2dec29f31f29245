"""Tuning a cluster: more asgi tasks from the inventory, while clients chat and browse."""

from __future__ import annotations

import time

from conftest import Swarm
from helpers import Stack, wait_until
from traffic import Conversation, HttpProbe, playbook


def asgi_tasks_answering(stack: Stack, room: str, connections: int = 12) -> set[str]:
    """The asgi tasks that serve `connections` WebSockets opened through `stack` at once."""
    clients = [stack.chat(room, nick=f"probe{n}") for n in range(connections)]
    try:
        return {client.served_by for client in clients}
    finally:
        for client in clients:
            client.close()


def test_asgi_replicas_2_to_4_and_back_while_clients_chat(
    nodes: list[Stack], swarm: Swarm, room: str
):
    before = swarm.running("asgi")
    with (
        HttpProbe(nodes[0], path="/", interval=0.1) as probe,
        Conversation(nodes[-1], size=2, interval=1.0, name="scale") as talk,
    ):
        time.sleep(2)
        started = time.monotonic()
        playbook(nodes[0], "site.yml", "-e", "djchat_asgi_replicas=4")
        scaled_up = time.monotonic() - started
        assert len(swarm.running("asgi")) == 4
        # Each node's nginx finds the new tasks by name (its watcher reloads it when they appear).
        answering = wait_until(
            lambda: (
                (found := asgi_tasks_answering(nodes[1], room))
                == {f"asgi-{n}" for n in range(1, 5)}
                and found
            ),
            timeout=30,
            what="WebSockets through node 2 to reach all four asgi tasks",
        )
        playbook(nodes[0], "site.yml")
        assert len(swarm.running("asgi")) == 2
        time.sleep(3)
        probe.stop()
        figures = talk.finish()
    talk.assert_nothing_lost(figures)
    http = probe.figures()
    print(
        f"\nasgi {len(before)} -> 4 in {scaled_up:.0f} s (answering: {sorted(answering)}) -> 2; "
        f"chat {figures}; GET / every 0.1 s {http}"
    )
    assert http["requests_failed"] == 0, http
