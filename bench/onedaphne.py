"""The fan-out load on ONE daphne process, without Docker: CPU per delivery of the app itself.

Starts a throwaway redis-server and a SQLite database, one daphne process of the app in --app
(this checkout's app/ by default; another worktree's to compare commits), runs
`wsload.py fanout --pid <daphne>` against it, and prints wsload's JSON document with the CPU that
redis-server used over the whole run added ("redis_cpu_seconds"): daphne's own CPU is what --pid
meters, and the design under test may shift work to Redis. With --floor it measures bench/floor.py
instead, under the same load (issue 16). From the repository root:

    python bench/onedaphne.py --rooms 10 --clients 20 --rates 10,50,100
    python bench/onedaphne.py --app /work/wt-fanout-base/app --rates 10,50,100
    python bench/onedaphne.py --floor --rates 10,50,100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "app"))

from tests import servers  # noqa: E402  (the app tests' process helpers, no Django imports)


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wsload(url: str, pid: int, args: argparse.Namespace) -> dict:
    command = [
        sys.executable, str(BENCH / "wsload.py"), "--url", url,
        "--room-prefix", f"one-{int(time.time())}",
        "fanout", "--pid", str(pid), "--rooms", str(args.rooms), "--clients", str(args.clients),
        "--rates", args.rates, "--step-seconds", str(args.step_seconds),
        "--drain-seconds", str(args.drain_seconds),
    ]  # fmt: skip
    path = os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))
    completed = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def app_env(workdir: Path, redis: servers.RedisServer, app: Path) -> dict[str, str]:
    return servers.app_env(
        DJANGO_SECRET_KEY="bench-only-" + "k" * 50,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=f"sqlite:///{workdir}/db.sqlite3",
        REDIS_URL=redis.url,
        REDIS_PASSWORD=redis.password,
        DJANGO_LOG_LEVEL="WARNING",
        # The bench profiles' limits (bench/profiles/defaults.yml): the load, not abuse limits.
        CHAT_RATE_LIMIT_MESSAGES="10000",
        CHAT_RATE_LIMIT_SECONDS="1",
        CHAT_ADDRESS_RATE_LIMIT_MESSAGES="100000",
        PYTHONPATH=str(app),
    )


def run_app(args: argparse.Namespace, workdir: Path) -> dict:
    app = Path(args.app).resolve()
    with servers.redis_server(workdir) as redis:
        env = app_env(workdir, redis, app)
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=app, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if migrated.returncode != 0:
            raise SystemExit(migrated.stderr)
        port = servers.free_port()
        command = [sys.executable, "-m", "djchat.asgi_server", "-b", "127.0.0.1", "-p", str(port),
                   "--proxy-headers", "djchat.asgi:application"]  # fmt: skip
        log = (workdir / "daphne.log").open("w")
        daphne = subprocess.Popen(command, cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            servers.wait_for_port(port, daphne)
            redis_before = process_cpu_seconds(redis.process.pid)
            result = wsload(f"ws://127.0.0.1:{port}", daphne.pid, args)
            result["redis_cpu_seconds"] = process_cpu_seconds(redis.process.pid) - redis_before
        finally:
            servers.stop(daphne)
            log.close()
    return result


def run_floor(args: argparse.Namespace) -> dict:
    port = servers.free_port()
    relay = subprocess.Popen(
        [sys.executable, str(BENCH / "floor.py"), "--port", str(port)], stdout=subprocess.DEVNULL
    )
    try:
        servers.wait_for_port(port, relay)
        return wsload(f"ws://127.0.0.1:{port}", relay.pid, args)
    finally:
        servers.stop(relay)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default=str(REPO / "app"))
    parser.add_argument("--floor", action="store_true", help="measure bench/floor.py instead")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rates", default="10,50,100")
    parser.add_argument("--step-seconds", type=float, default=6)
    parser.add_argument("--drain-seconds", type=float, default=6)
    args = parser.parse_args()
    if args.floor:
        result = run_floor(args)
    else:
        with tempfile.TemporaryDirectory(prefix="onedaphne-") as workdir:
            result = run_app(args, Path(workdir))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
