"""Real servers for the tests: redis-server and the app's own processes, started as subprocesses.

No Django imports here: the helpers only build command lines and environments, so the same code can
start the asgi server (uvicorn or daphne) for the browser test and the multi-process test.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# Variables the app reads; a subprocess gets exactly the ones a test gives it, never the caller's.
_APP_VARIABLE_PREFIXES = (
    "DJANGO_", "DATABASE_", "REDIS_", "CHAT_", "GUNICORN_", "METRICS_",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited ({process.returncode}) before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def app_env(**variables: str) -> dict[str, str]:
    """The caller's environment without any app setting, plus `variables`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_APP_VARIABLE_PREFIXES)
    }
    env.update(variables)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_python(
    code: str, *, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-c", code],
        cwd=APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class RedisServer:
    port: int
    password: str
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextlib.contextmanager
def redis_server(
    workdir: Path, port: int | None = None, password: str | None = None
) -> Iterator[RedisServer]:
    """A throwaway redis-server on a free loopback port (or `port`: one started again), password
    required, nothing persisted."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
    password = password or secrets.token_hex(16)
    port = port or free_port()
    log = workdir / "redis.log"
    process = subprocess.Popen(
        [
            executable,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--requirepass", password,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--logfile", str(log),
        ],
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield RedisServer(port=port, password=password, process=process)
    finally:
        stop(process)


@dataclass
class AppServer:
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def app_process(command: list[str], port: int, env: dict[str, str], log: Path):
    """Run one of the app's servers until the block ends; its output goes to `log`."""
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=APP_DIR, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    server = AppServer(port=port, process=process, log=log)
    try:
        try:
            wait_for_port(port, process)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{command[2]} did not start: {error}\n{server.output()}") from None
        yield server
    finally:
        stop(process)


def asgi_process(env: dict[str, str], log: Path, server: str = "uvicorn"):
    """The asgi process type, as the image runs it (djchat.asgi_server with `server`), on a free
    loopback port."""
    port = free_port()
    command = [PYTHON, "-m", "djchat.asgi_server", f"--server={server}", "--bind=127.0.0.1",
               f"--port={port}"]  # fmt: skip
    return app_process(command, port, env, log)


def gunicorn(env: dict[str, str], log: Path, workers: int = 2):
    """The wsgi process type, with the app's gunicorn.conf.py (gevent workers by default)."""
    port = free_port()
    command = [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "djchat.wsgi:application"]
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)}
    return app_process(command, port, env, log)


@dataclass
class Stack:
    """The app as deployed, minus nginx: two asgi processes and gunicorn sharing one database and
    one Redis, as separate OS processes."""

    asgi: list[AppServer]
    wsgi: AppServer
    logs: Path

    def describe_logs(self) -> str:
        return f"server logs: {self.logs}"


@contextlib.contextmanager
def running_stack(
    redis_server: RedisServer, workdir: Path, server: str = "uvicorn", **extra_env: str
) -> Iterator[Stack]:
    env = app_env(
        # Debug, so a lone asgi process serves the static files to the browser (no nginx here).
        DJANGO_DEBUG="true",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=f"sqlite:///{workdir}/db.sqlite3",
        REDIS_URL=redis_server.url,
        REDIS_PASSWORD_FILE=str(write_secret(workdir / "redis-password", redis_server.password)),
        CHAT_PRESENCE_TTL="6",
        **extra_env,
    )
    migrated = manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    with contextlib.ExitStack() as running:
        asgi = [
            running.enter_context(asgi_process(env, workdir / f"{server}-{n}.log", server))
            for n in (1, 2)
        ]
        wsgi = running.enter_context(gunicorn(env, workdir / "gunicorn.log"))
        yield Stack(asgi=asgi, wsgi=wsgi, logs=workdir)


def write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path
