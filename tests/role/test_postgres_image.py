"""The local postgres image (the base_images role with djchat_base_images_extra: [postgres]):
Debian's PostgreSQL with the official image's contract for what cluster mode uses. The first
start of an empty data directory makes POSTGRES_USER with the password in POSTGRES_PASSWORD_FILE
and POSTGRES_DB; connections over the network need that password; the data outlives the
container; a first start without a readable password file stops with a message."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from playbook import REPO_ROOT, free_port, local_inventory, run_playbook

IMAGE = "djchat-local/postgres:bookworm"  # the role's defaults with the extra image
PASSWORD = "a-long-test-password-" + uuid.uuid4().hex
WRONG_PASSWORD = "not-" + PASSWORD
INITDB_SAYS = "The files belonging to this database system will be owned by user"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=120
    )


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    built = run_playbook(
        REPO_ROOT / "playbooks/base_images.yml",
        {"djchat_base_images_extra": ["postgres"]},
        inventory=local_inventory(tmp_path_factory.mktemp("inventory") / "hosts.json"),
        timeout=900,
    )
    assert built.returncode == 0, built.output
    return IMAGE


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "db_password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o644)  # read by the image's uid 999 through the bind mount
    return path


@pytest.fixture
def volume() -> Iterator[str]:
    name = f"djchat-pgtest-{uuid.uuid4().hex[:8]}"
    yield name
    docker("volume", "rm", "--force", name, check=False)


class Server:
    """One container of the image on a volume, published on a free port of 127.0.0.1."""

    def __init__(self, image: str, volume: str, password_file: Path | None) -> None:
        self.name = f"djchat-pgtest-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        secret = (
            ["--volume", f"{password_file}:/run/secrets/db_password:ro"] if password_file else []
        )
        docker(
            "run", "--detach", "--name", self.name,
            "--volume", f"{volume}:/var/lib/postgresql/data", *secret,
            "--env", "POSTGRES_USER=djchat", "--env", "POSTGRES_DB=chat",
            "--env", "POSTGRES_PASSWORD_FILE=/run/secrets/db_password",
            "--publish", f"127.0.0.1:{self.port}:5432", image,
        )  # fmt: skip

    def connect(self, password: str = PASSWORD, timeout: float = 60) -> psycopg.Connection:
        """A connection as djchat to chat, once the server accepts them."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return psycopg.connect(
                    host="127.0.0.1", port=self.port, user="djchat", dbname="chat",
                    password=password, connect_timeout=3, autocommit=True,
                )  # fmt: skip
            except psycopg.OperationalError as error:
                if "password authentication failed" in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def logs(self) -> str:
        shown = docker("logs", self.name, check=False)
        return shown.stdout + shown.stderr

    def remove(self) -> None:
        docker("rm", "--force", self.name, check=False)


def test_the_first_start_makes_the_user_and_database_from_the_environment(
    image, volume, password_file
):
    server = Server(image, volume, password_file)
    try:
        with server.connect() as connection:
            row = connection.execute(
                "SELECT current_user, current_database(),"
                " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
            ).fetchone()
        assert row == ("djchat", "chat", True), server.logs()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            server.connect(password=WRONG_PASSWORD)
    finally:
        server.remove()


def test_the_data_outlives_the_container_and_is_not_initialised_again(image, volume, password_file):
    first = Server(image, volume, password_file)
    try:
        with first.connect() as connection:
            connection.execute("CREATE TABLE kept (said text)")
            connection.execute("INSERT INTO kept VALUES ('before the restart')")
        assert INITDB_SAYS in first.logs()
    finally:
        first.remove()

    second = Server(image, volume, password_file)
    try:
        with second.connect() as connection:
            kept = connection.execute("SELECT said FROM kept").fetchall()
        assert kept == [("before the restart",)]
        logs = second.logs()
        assert INITDB_SAYS not in logs, logs
    finally:
        second.remove()


def test_a_first_start_without_a_password_file_stops_and_says_so(image, volume):
    server = Server(image, volume, password_file=None)
    try:
        status = docker("wait", server.name).stdout.strip()
        assert status != "0"
        assert "POSTGRES_PASSWORD_FILE must name a readable file" in server.logs()
    finally:
        server.remove()
