"""A worker node goes down while people chat through it: the swarm starts its tasks on the other
nodes, its chatters reconnect through another node (as DNS round robin or a balancer would send
them) and resume with `since`, and nothing they or anyone else said is lost."""

from __future__ import annotations

import os
import time

from conftest import Swarm
from helpers import Stack, docker, wait_until
from traffic import Conversation, HttpProbe


def test_a_worker_node_stops_and_its_chatters_lose_nothing(nodes: list[Stack], swarm: Swarm):
    # The node behind the last URL (a worker with no stateful service).
    node = os.environ.get("CLUSTER_FAILING_NODE", "djchat-cluster-3")
    through, elsewhere = nodes[-1], nodes[0]
    replicas = {service: len(swarm.running(service)) for service in ("wsgi", "asgi")}
    with (
        HttpProbe(elsewhere, path="/", interval=0.2) as probe,
        Conversation(through, size=2, interval=1.0, name="failover") as talk,
    ):
        # Their next connection goes to another node: the one they were on will be gone.
        for chatter in talk.chatters:
            chatter.client.base_url = elsewhere.ws_base_url
            chatter.client.origin = elsewhere.origin
        time.sleep(3)
        stopped = time.monotonic()
        docker("stop", "--time=5", node)
        wait_until(
            lambda: all(
                len(tasks := swarm.running(service)) == count and node not in tasks
                for service, count in replicas.items()
            ),
            timeout=180,
            interval=2,
            what=f"wsgi and asgi back at {replicas} tasks without {node}",
        )
        rescheduled = time.monotonic() - stopped
        time.sleep(5)
        probe.stop()
        figures = talk.finish()
    http = probe.figures()
    print(
        f"\n{node} stopped: wsgi and asgi back at {replicas} tasks on the other nodes in "
        f"{rescheduled:.0f} s; chat through it, then through {elsewhere.base_url}: {figures}; "
        f"GET / of {elsewhere.base_url} every 0.2 s meanwhile: {http}"
    )
    # The node comes back (its engine is started by the docker_engine role's supervisor) and
    # rejoins the swarm, where nginx runs on it again.
    docker("start", node)
    docker("exec", node, "setsid", "-f", "/usr/local/sbin/djchat-dockerd")
    wait_until(
        lambda: node in swarm.running("nginx"),
        timeout=180,
        interval=2,
        what=f"{node} back in the swarm with its nginx",
    )
    talk.assert_nothing_lost(figures)
    assert figures["reconnects"] >= len(talk.chatters), figures
