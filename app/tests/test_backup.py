"""`manage.py backup` and `manage.py restore`: a round trip through a real SQLite file and a real
Redis, in processes of their own as the deploy runs them (chat.backup)."""

from __future__ import annotations

import json
import secrets
import time

import pytest
import redis

from chat import backup
from tests import servers

WRITE = """
from django.contrib.auth import get_user_model
from chat.services.messages import post_message
user = get_user_model().objects.create_user("keeper", password="a long passphrase 81")
for number in range(3):
    post_message("lobby", "keeper", f"kept {number}", author_id=user.pk)
"""
READ = """
import json
from django.contrib.auth import get_user_model
from chat.services.messages import messages_after
print(json.dumps({
    "login": get_user_model().objects.get(username="keeper").check_password("a long passphrase 81"),
    "history": [(m["id"], m["text"]) for m in messages_after("lobby", 0, 10)],
}))
"""


@pytest.fixture
def stack_env(tmp_path, redis_server):
    """The environment of one stack: its own database file, the test Redis."""

    def env(name: str) -> dict[str, str]:
        return servers.app_env(
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DATABASE_URL=f"sqlite:///{tmp_path}/{name}.sqlite3",
            REDIS_URL=redis_server.url,
            REDIS_PASSWORD=redis_server.password,
        )

    return env


def run(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_round_trip_into_a_fresh_stack(tmp_path, stack_env, redis_server):
    old, new = stack_env("old"), stack_env("new")
    run(servers.manage("migrate", "--noinput", env=old))
    run(servers.manage("shell", "-c", WRITE, env=old))
    client = redis.Redis(port=redis_server.port, password=redis_server.password)
    client.set("djchat:quota:messages:account:7", "1", px=600_000)  # outlives the connection
    client.set("djchat:latest:lobby", "3")  # no expiry
    client.zadd("djchat:presence:lobby", {"keeper": 1})  # live: never backed up
    directory = tmp_path / "backup"
    directory.mkdir()

    manifest = json.loads(run(servers.manage("backup", str(directory), env=old)).splitlines()[-1])
    client.flushall()
    time.sleep(0.01)
    run(servers.manage("migrate", "--noinput", env=new))
    said = run(servers.manage("restore", str(directory), env=new))
    restored = json.loads(said.splitlines()[-1])

    assert manifest["database"] == "sqlite"
    assert "chat" in manifest["migrations"]
    assert sorted(p.name for p in directory.iterdir()) == [
        "database.sqlite3", "manifest.json", "redis.jsonl"
    ]  # fmt: skip
    assert json.loads(run(servers.manage("shell", "-c", READ, env=new)).splitlines()[-1]) == {
        "login": True,
        "history": [[1, "kept 0"], [2, "kept 1"], [3, "kept 2"]],
    }
    assert (restored["redis_keys_restored"], restored["redis_keys_expired"]) == (2, 0)
    assert client.get("djchat:latest:lobby") == b"3"
    assert client.ttl("djchat:latest:lobby") == -1
    assert 0 < client.pttl("djchat:quota:messages:account:7") <= 600_000
    assert not client.exists("djchat:presence:lobby")


def test_a_key_whose_time_ran_out_since_the_backup_stays_gone(tmp_path, redis_server):
    client = redis.Redis(port=redis_server.port, password=redis_server.password)
    client.set("djchat:quota:messages:address:10.0.0.9", "1", px=5_000)
    client.set("djchat:quota:messages:account:7", "1", px=60_000)
    made_at = time.time()
    assert backup.dump_redis(tmp_path / "redis.jsonl") == 2
    client.flushall()

    # Restored as if 10 s had passed: the 5 s key is over, the other has about 50 s left.
    restored = backup.restore_redis(tmp_path / "redis.jsonl", made_at, now=made_at + 10)

    assert restored == (1, 1)
    assert not client.exists("djchat:quota:messages:address:10.0.0.9")
    assert 45_000 < client.pttl("djchat:quota:messages:account:7") <= 50_000


def test_restore_refuses_a_directory_that_is_no_backup(tmp_path, stack_env):
    env = stack_env("db")
    run(servers.manage("migrate", "--noinput", env=env))
    (tmp_path / "empty").mkdir()

    result = servers.manage("restore", str(tmp_path / "empty"), env=env)

    assert result.returncode != 0
    assert "holds no manifest.json: not a djchat backup" in result.stderr


def test_backup_refuses_a_directory_with_files_in_it(tmp_path, stack_env):
    env = stack_env("db")
    run(servers.manage("migrate", "--noinput", env=env))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old").write_text("x")

    result = servers.manage("backup", str(tmp_path / "used"), env=env)

    assert result.returncode != 0
    assert "is not an empty directory" in result.stderr


def test_only_postgresql_backups_start_with_the_deploys_dump_beside_them(tmp_path):
    (tmp_path / backup.POSTGRES_DIR).mkdir()

    backup.check_empty(tmp_path, "postgresql")
    with pytest.raises(backup.BackupError, match="is not an empty directory"):
        backup.check_empty(tmp_path, "sqlite")
    (tmp_path / "old").write_text("x")
    with pytest.raises(backup.BackupError, match="is not an empty directory"):
        backup.check_empty(tmp_path, "postgresql")


def test_copy_fails_on_a_corrupt_database(tmp_path):
    source = tmp_path / "bad.sqlite3"
    source.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)

    with pytest.raises(backup.BackupError, match=r"not a database|malformed|integrity"):
        backup.copy_sqlite(source, tmp_path / "copy.sqlite3")
