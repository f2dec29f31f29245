"""playbooks/backup.yml and restore.yml: what a stack held comes back into a fresh one.

Messages and an account are made through nginx as people make them; a backup is taken while the
stack serves; teardown with purge removes the stack, its volumes and its project directory; a
fresh converge brings up an empty stack; the restore puts the data back. The account logs in
with its password again and the room's history is the same, ids included, and goes on from there.
The round trip goes through the controller, as a host that is lost would need: the backup is
fetched there (djchat_backup_fetch_dir), the target's own archive is gone after the purge, and the
restore sends the controller's copy back (djchat_restore_archive=<path on the controller>).
"""

from __future__ import annotations

import io
import json
import re
import stat
import tarfile
import time
from pathlib import Path

import pytest

from helpers import Stack, logged_in_session, said, sign_up, unique

ARCHIVE = re.compile(r"Backup (/\S+\.tar\.gz): sqlite database, (\d+) Redis keys")


@pytest.mark.disruptive
@pytest.mark.timeout(1800)  # the fresh converge rebuilds the app image
def test_backup_then_purge_then_restore_brings_back_history_and_logins(
    stack: Stack, room: str, tmp_path: Path
):
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    username, password = sign_up(stack, "keeper")
    session = logged_in_session(stack, username, password)
    with stack.chat(room, cookies=session.cookies) as author:
        sent = [author.say(unique(f"kept{n}")) for n in range(3)]

    made = stack.playbook("backup.yml", "-e", f"djchat_backup_fetch_dir={tmp_path}")
    found = ARCHIVE.search(said(made))
    assert found, made.output[-3000:]
    archive = Path(found.group(1))
    mode = archive.stat()
    assert (stat.S_IMODE(mode.st_mode), mode.st_uid) == (0o600, 0), "root's alone"
    assert f"copied to {tmp_path}/" in said(made)
    fetched = list(tmp_path.glob(f"*/{archive.name}"))
    assert len(fetched) == 1, f"one copy under {tmp_path}/<host>/: {fetched}"
    assert fetched[0].read_bytes() == archive.read_bytes()

    stack.playbook("teardown.yml", "-e", "djchat_teardown_purge=true", timeout=600)
    assert not stack.project_dir.exists()
    assert archive.exists(), "a purge keeps the backups"
    archive.unlink()  # the host's copy lost: the controller's is what comes back
    stack.playbook("site.yml", timeout=1500)
    stack.wait_ready(timeout=180)
    with stack.chat(room, nick="visitor") as empty:
        assert empty.history_messages == [], "the fresh stack starts empty"

    restored = stack.playbook("restore.yml", "-e", f"djchat_restore_archive={fetched[0]}")
    assert f"Restored {archive.name}" in said(restored), restored.output[-3000:]
    assert archive.exists(), "the controller's copy is put back in the backup directory first"
    stack.wait_ready(timeout=180)

    session = logged_in_session(stack, username, password)
    with stack.chat(room, cookies=session.cookies) as returner:
        assert returner.history_messages == sent
        after = returner.say(unique("after"))
    assert after["id"] == sent[-1]["id"] + 1, "ids go on from the restored history"
    assert after["nick"] == username
    assert stack.get(f"/api/rooms/{room}/messages?since=0").json() == [*sent, after]


@pytest.mark.disruptive
@pytest.mark.timeout(600)
def test_retention_keeps_the_newest_of_this_project_and_never_touches_another(stack: Stack):
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    first = Path(ARCHIVE.search(said(stack.playbook("backup.yml"))).group(1))
    # Another project on the same host whose name starts with this one's, and an older backup.
    other = first.with_name(f"{stack.project}-tuned-20200101T000000Z.tar.gz")
    other.write_bytes(b"another project's archive")
    try:
        time.sleep(1.1)  # names are to the second
        kept = stack.playbook("backup.yml", "-e", "djchat_backup_keep=1")
        newest = Path(ARCHIVE.search(said(kept)).group(1))

        assert newest != first
        assert newest.exists()
        assert not first.exists(), "the older archive of this project is beyond the one kept"
        assert other.exists(), "another project's archive is never this project's to remove"
        assert "1 kept" in said(kept)
    finally:
        other.unlink(missing_ok=True)


@pytest.mark.disruptive
@pytest.mark.timeout(600)
def test_restore_refuses_a_cluster_archive_before_stopping_anything(stack: Stack):
    """An archive whose database is a PostgreSQL dump (a cluster's) is refused before wsgi and asgi
    are stopped: the same containers serve on."""
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    archive = Path("/var/backups/djchat") / f"{stack.project}-20200101T000000Z.tar.gz"
    manifest = {"made_at": 0, "database": "postgresql", "migrations": {}, "redis_keys": 0}
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (
            ("manifest.json", json.dumps({**manifest, "format": 1}).encode()),
            ("postgres/database.pgdump", b"PGDMP"),
        ):
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    serving = {c.name: c.attrs["State"]["StartedAt"] for c in stack.services("wsgi|asgi")}
    try:
        refused = stack.playbook(
            "restore.yml", "-e", f"djchat_restore_archive={archive.name}", check=False
        )
    finally:
        archive.unlink()

    assert refused.returncode != 0
    assert "holds no database.sqlite3" in said(refused), refused.output[-3000:]
    assert "nothing was changed" in said(refused)
    assert {c.name: c.attrs["State"]["StartedAt"] for c in stack.services("wsgi|asgi")} == serving
