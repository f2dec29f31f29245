"""playbooks/backup.yml and restore.yml in swarm mode: pg_dump and the app's Redis part run as
one-off jobs of the serving release on the node of the cluster's PostgreSQL, which keeps the
archive; the restore stops the app's services (scaled to none), puts the database back with
pg_restore in one transaction, then Redis and the migrations, and scales them back.

What was made before the backup comes back, through any node; what was made after it is gone.
"""

from __future__ import annotations

import re

import pytest

from conftest import Swarm
from helpers import Stack, docker, logged_in_session, post_form, said, sign_up, unique, wait_until

ARCHIVE = re.compile(r"Backup (/\S+\.tar\.gz): postgresql database, (\d+) Redis keys")


def serving(stack: Stack) -> bool:
    """The node renders its home page and a WebSocket gets its history (/readyz answers a node's
    own host only)."""
    if stack.get("/", timeout=5).status_code != 200:
        return False
    with stack.chat(unique("cluster-ready"), nick="probe", timeout=5) as client:
        return client.served_by != ""


@pytest.mark.timeout(1200)
def test_backup_then_restore_puts_the_cluster_database_back(
    nodes: list[Stack], swarm: Swarm, room: str
):
    first, second, last = nodes[0], nodes[1], nodes[-1]
    username, password = sign_up(first, "keeper")
    session = logged_in_session(second, username, password)
    with second.chat(room, cookies=session.cookies) as author:
        sent = [author.say(unique(f"kept{n}")) for n in range(3)]

    made = first.playbook("backup.yml")
    found = ARCHIVE.search(said(made))
    assert found, made.output[-3000:]
    archive = found.group(1)
    # Kept on the database's node (the scenario's first manager), root's alone.
    mode = docker("exec", swarm.manager, "stat", "-c", "%a %u", archive).stdout.split()
    assert mode == ["600", "0"], f"{archive} is {mode}"
    print(f"\nbackup {archive}: {found.group(2)} Redis keys")

    # Made after the backup: the restore takes them away.
    later, later_password = sign_up(last, "later")
    with last.chat(room, nick="latecomer") as late:
        late.say(unique("after-backup"))

    restored = first.playbook("restore.yml")
    assert f"Restored {archive.rsplit('/', 1)[1]}" in said(restored), restored.output[-3000:]
    for stack in nodes:
        wait_until(
            lambda stack=stack: serving(stack), timeout=180, interval=2, what=f"{stack.base_url}"
        )

    session = logged_in_session(last, username, password)
    with last.chat(room, cookies=session.cookies) as returner:
        assert returner.history_messages == sent
        after = returner.say(unique("after"))
    assert after["id"] == sent[-1]["id"] + 1, "ids go on from the restored history"
    assert first.get(f"/api/rooms/{room}/messages?since=0").json() == [*sent, after]
    with second.session() as visitor:
        refused = post_form(
            visitor, second, "/accounts/login/", {"username": later, "password": later_password}
        )
    assert refused.status_code != 302, "an account made after the backup is gone"
