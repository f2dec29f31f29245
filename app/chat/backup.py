"""What a backup of the chat holds and how it is put back (`manage.py backup`, `manage.py restore`).

A backup is a directory the deploy packs into one archive (playbooks/backup.yml):

- database.sqlite3: the database, copied with SQLite's online backup API, page by page under the
  database's own locks, so serving processes keep reading and writing meanwhile; checked with
  `PRAGMA integrity_check` before it counts. (The cluster's PostgreSQL is dumped with pg_dump, and
  put back with pg_restore, by a job of the deploy's beside this one; this module then does only
  the Redis part, and the migrations on restore.)
- redis.jsonl: one line per Redis key that outlives the connections of the moment (message quotas,
  the newest message id of each room, Django's cache), as DUMP's payload with its time to live.
  What only describes connections open at that moment (presence, sockets per account) is left
  out: after a restore nobody is connected yet, and each connection writes its own again.
- manifest.json: when, which database engine, the newest migration of each app, the key counts.

A restore copies the database back with the same API (the app's processes stopped), applies the
migrations of the release now deployed (a backup of an earlier release is brought forward), and
puts back each Redis key whose time to live has not run out since the backup was made.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from django.conf import settings
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

from chat.services.presence import presence_key
from chat.services.quotas import account_sockets_key
from chat.services.redis_client import sync_redis_client

FORMAT = 1
DATABASE_FILE = "database.sqlite3"
REDIS_FILE = "redis.jsonl"
MANIFEST_FILE = "manifest.json"
# PostgreSQL's part, written by the deploy's pg_dump job before this module runs (its own uid's).
POSTGRES_DIR = "postgres"


class BackupError(Exception):
    """A backup that cannot be made or put back, said in words an operator can act on."""


def live_key_prefixes() -> tuple[str, ...]:
    """Keys that describe the connections open right now: never backed up."""
    return (presence_key(""), account_sockets_key(0)[:-1])


def database_engine() -> str:
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine.endswith("sqlite3"):
        return "sqlite"
    if engine.endswith("postgresql"):
        return "postgresql"
    raise BackupError(f"no backup for the database engine {engine}")


def sqlite_path() -> Path:
    return Path(settings.DATABASES["default"]["NAME"])


def copy_sqlite(source: Path, target: Path, *, source_read_only: bool = False) -> None:
    """SQLite's online backup of `source` into `target` (replaced), then its integrity check.

    The copy is left in rollback-journal mode, one self-contained file (the app sets WAL again on
    every connection it opens). A read-only source (a backup on a read-only mount) is opened as
    immutable: nothing else writes it, and SQLite need not create its lock files beside it.
    """
    if not source.is_file():
        raise BackupError(f"there is no database at {source}")
    uri = f"file:{source}?mode=ro&immutable=1" if source_read_only else f"file:{source}"
    try:
        src = sqlite3.connect(uri, uri=True, timeout=30)
        dst = sqlite3.connect(target, timeout=30)
        try:
            with dst:
                src.backup(dst, pages=1024, sleep=0.005)
            dst.execute("PRAGMA journal_mode=DELETE")
            (result,) = dst.execute("PRAGMA integrity_check").fetchone()
        finally:
            src.close()
            dst.close()
    except sqlite3.Error as error:
        raise BackupError(f"copying {source} to {target} failed: {error}") from None
    if result != "ok":
        raise BackupError(f"the copy of {source} failed its integrity check: {result}")


def _redis() -> redis.Redis:
    return sync_redis_client(socket_timeout=30)


def dump_redis(path: Path) -> int:
    """Write every key worth keeping to `path`, one JSON line each; return how many."""
    skipped = tuple(prefix.encode() for prefix in live_key_prefixes())
    count = 0
    client = _redis()
    with client, path.open("w", encoding="utf-8") as out:
        for key in client.scan_iter(count=1000):
            if key.startswith(skipped):
                continue
            with client.pipeline(transaction=True) as pipe:
                payload, ttl_ms = pipe.dump(key).pttl(key).execute()
            if payload is None:  # expired between SCAN and DUMP
                continue
            line = {
                "key": base64.b64encode(key).decode(),
                "value": base64.b64encode(payload).decode(),
                "ttl_ms": ttl_ms if ttl_ms > 0 else 0,  # 0: none
            }
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
            count += 1
    return count


def _redis_lines(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                yield json.loads(line)
            except ValueError as error:
                raise BackupError(f"{path.name} line {number} is not JSON: {error}") from None


def restore_redis(path: Path, made_at: float, now: float | None = None) -> tuple[int, int]:
    """Put back the keys of `path` whose time to live has not run out: (restored, expired)."""
    elapsed_ms = int(((now if now is not None else time.time()) - made_at) * 1000)
    restored = expired = 0
    client = _redis()
    with client:
        for line in _redis_lines(path):
            ttl_ms = int(line["ttl_ms"])
            if ttl_ms and ttl_ms - elapsed_ms <= 0:
                expired += 1
                continue
            client.restore(
                base64.b64decode(line["key"]),
                max(ttl_ms - elapsed_ms, 1) if ttl_ms else 0,
                base64.b64decode(line["value"]),
                replace=True,
            )
            restored += 1
    return restored, expired


def migrations() -> dict[str, str]:
    """The newest applied migration of each app (what the backup's schema is)."""
    newest: dict[str, str] = {}
    for app, name in MigrationRecorder(connections["default"]).applied_migrations():
        newest[app] = max(newest.get(app, name), name)
    return dict(sorted(newest.items()))


@dataclass
class Manifest:
    made_at: float
    database: str
    migrations: dict[str, str]
    redis_keys: int
    format: int = FORMAT

    def write(self, directory: Path) -> None:
        (directory / MANIFEST_FILE).write_text(json.dumps(self.__dict__, indent=2) + "\n")

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise BackupError(
                f"{directory} holds no {MANIFEST_FILE}: not a djchat backup"
            ) from None
        except ValueError as error:
            raise BackupError(f"{path} is not JSON: {error}") from None
        if data.get("format") != FORMAT:
            raise BackupError(
                f"{path} is format {data.get('format')!r}; this release reads {FORMAT}"
            )
        return cls(**data)


def check_empty(directory: Path, engine: str) -> None:
    """`directory` exists and holds nothing yet but, for PostgreSQL, the deploy's dump."""
    allowed = {POSTGRES_DIR} if engine == "postgresql" else set()
    if not directory.is_dir() or any(p.name not in allowed for p in directory.iterdir()):
        raise BackupError(f"{directory} is not an empty directory")


def backup(directory: Path) -> Manifest:
    """Write a backup into `directory` (existing, empty but for PostgreSQL's dump)."""
    engine = database_engine()
    check_empty(directory, engine)
    if engine == "sqlite":
        connections.close_all()
        copy_sqlite(sqlite_path(), directory / DATABASE_FILE)
    made_at = time.time()
    manifest = Manifest(
        made_at=made_at,
        database=engine,
        migrations=migrations(),
        redis_keys=dump_redis(directory / REDIS_FILE),
    )
    manifest.write(directory)
    return manifest


def restore(directory: Path) -> tuple[Manifest, int, int]:
    """Put the backup in `directory` back: (manifest, Redis keys restored, keys expired)."""
    manifest = Manifest.read(directory)
    engine = database_engine()
    if manifest.database != engine:
        raise BackupError(
            f"the backup holds a {manifest.database} database and this stack runs {engine}"
        )
    if engine == "sqlite":
        connections.close_all()
        copy_sqlite(directory / DATABASE_FILE, sqlite_path(), source_read_only=True)
    restored, expired = restore_redis(directory / REDIS_FILE, manifest.made_at)
    return manifest, restored, expired
