"""The fan-out load on ONE daphne process, without Docker: CPU per delivery of the app itself.

Starts a throwaway redis-server and a SQLite database, one daphne process of the app in --app
(this checkout's app/ by default; another worktree's to compare commits), started by that app's
own launcher, `python -m djchat.asgi_server`, as the asgi containers run it; runs
`wsload.py fanout --pid <daphne>` against it, and prints wsload's JSON document with the CPU that
redis-server used over the whole run added ("redis_cpu_seconds"): daphne's own CPU is what --pid
meters, and the design under test may shift work to Redis. With --floor it measures bench/floor.py
instead, under the same load (issue 16).

The throwaway servers come from the app tests' process helpers, app/tests/servers.py, found
through PYTHONPATH (as bench/wsload.py finds tests/chatclient.py). From the repository root:

    PYTHONPATH=app python bench/onedaphne.py --rooms 10 --clients 20 --rates 10,50,100
    PYTHONPATH=app python bench/onedaphne.py --app /work/wt-fanout-base/app --rates 10,50,100
    PYTHONPATH=app python bench/onedaphne.py --floor --rates 10,50,100

With --server the same app object is served by another ASGI server instead of daphne, one
process, so daphne's share of the CPU per delivery can be told from the app's: uvicorn with
wsproto (the launcher's `--server=uvicorn`, the asgi containers' default) or with websockets (the
launcher's uvicorn options, the WebSocket implementation alone swapped), or granian. granian is no
dependency of the app and stays out of its venv: it is installed with pip's --target into
--servers-path (SERVERS_PIP below), which only granian's process gets on its PYTHONPATH.

    PYTHONPATH=app python bench/onedaphne.py --server uvicorn-wsproto --rates 10,50,100
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

try:  # the app tests' process helpers (no Django imports): PYTHONPATH=app, see above
    from tests import servers
except ModuleNotFoundError as missing:
    if missing.name != "tests":
        raise
    raise SystemExit(
        "bench/onedaphne.py needs the app tests' helpers (app/tests/servers.py) on PYTHONPATH; "
        "from the repository root:\n    PYTHONPATH=app python bench/onedaphne.py ..."
    ) from None

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

# Each --server and the distributions that serve it. daphne and uvicorn-wsproto are the launcher's
# own servers (`python -m djchat.asgi_server --server=daphne|uvicorn`, in the app's lock);
# uvicorn-websockets takes websockets from this venv (requirements-dev.txt); granian alone comes
# from --servers-path.
SERVER_DISTRIBUTIONS = {
    "daphne": ("daphne", "Twisted", "autobahn"),
    "uvicorn-wsproto": ("uvicorn", "wsproto", "h11"),
    "uvicorn-websockets": ("uvicorn", "websockets", "h11"),
    "granian": ("granian",),
}
SERVERS = tuple(SERVER_DISTRIBUTIONS)
# The launcher's name for each server it runs itself.
LAUNCHED = {"daphne": "daphne", "uvicorn-wsproto": "uvicorn"}
# The launcher's run_uvicorn() with one override: uvicorn's websockets implementation instead of
# the launcher's wsproto protocol. Run from --app like the launcher, so its options are that app's.
UVICORN_WEBSOCKETS = (
    "import sys, uvicorn; from djchat import asgi_server as launcher; "
    "options = launcher.parse_args(sys.argv[1:]); "
    "uvicorn.run(launcher.APPLICATION, "
    "**{**launcher.uvicorn_options(options, launcher.frame_size()), 'ws': 'websockets'})"
)
SERVERS_PATH = "/tmp/asgi-servers"
# Pinned, so runs on two days compare the same server. click is the venv's own version: the
# directory comes before the venv on granian's PYTHONPATH and must not shadow the venv's copy.
SERVERS_PIN = "granian==2.8.9 click==8.5.1"
SERVERS_PIP = f"{sys.executable} -m pip install --target {{path}} {SERVERS_PIN}"


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The live children of `pid` (every thread's: a child belongs to the thread that forked it)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return found


def serving_pid(process: subprocess.Popen, name: str) -> int:
    """The process that serves the WebSockets, whose CPU --pid meters (once the app answers).

    daphne and uvicorn (one worker: uvicorn then runs it in its own process, no supervisor) serve
    in the process started. granian's started process is a supervisor: it binds the socket and
    starts its worker with multiprocessing (a fork on Python 3.11, multiprocessing's default start
    method there; `spawn_main` where spawn is), and the worker runs the app, its asyncio loop and
    granian's Rust I/O threads. The worker is measured, and the supervisor's CPU over the whole
    run is reported beside it ("supervisor_cpu_seconds") to show what that leaves out.
    multiprocessing's resource tracker, where it runs, is a child too, and serves nothing."""
    workers = []
    for pid in child_pids(process.pid):
        try:
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(pid)
        except OSError:  # it ended meanwhile
            continue
    if len(workers) > 1:
        raise SystemExit(f"{name} runs {len(workers)} worker processes, expected 1")
    return workers[0] if workers else process.pid


def wait_for_health(port: int, process: subprocess.Popen, name: str, timeout: float = 60.0) -> None:
    """The port answers /healthz: the app is loaded. An open port alone is not enough where a
    supervisor binds it before its worker has imported the app (granian)."""
    servers.wait_for_port(port, process, timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name} did not answer /healthz on port {port}")
        time.sleep(0.1)


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
        # What djchat.asgi_server sets for its own process (the kept database connection), for
        # every --server alike: uvicorn-websockets and granian do not go through its main().
        DJCHAT_ASGI_PROCESS="true",
        PYTHONPATH=str(app),
    )


def check_servers_path(args: argparse.Namespace) -> None:
    """granian is in --servers-path itself (not merely in the venv)."""
    path = str(Path(args.servers_path).resolve())
    if importlib.machinery.PathFinder.find_spec("granian", [path]) is None:
        raise SystemExit(
            f"--server granian needs granian in {path}; install the pinned server there with:\n"
            f"    {SERVERS_PIP.format(path=path)}"
        )


def server_versions(args: argparse.Namespace) -> dict[str, str]:
    """The versions that served the run, from where the server process imports them: this venv,
    or --servers-path for granian."""
    names = SERVER_DISTRIBUTIONS[args.server]
    if args.server != "granian":
        return {name: importlib.metadata.version(name) for name in names}
    found = importlib.metadata.distributions(path=[str(Path(args.servers_path).resolve())])
    return {d.metadata["Name"]: d.version for d in found if d.metadata["Name"] in names}


def server_command(args: argparse.Namespace, port: int) -> list[str]:
    """One process of the chosen server on 127.0.0.1:port, run from --app.

    daphne and uvicorn-wsproto: the app's launcher, `python -m djchat.asgi_server`, as the asgi
    containers run it (its docstring says what each server is given: the frame and message limit
    of the app's longest message with a 1009 close past it, pings, proxy headers, graceful close;
    the access log at each server's default: a line per WebSocket connect and disconnect from
    daphne, the handshake's lines from uvicorn, none per message).

    uvicorn-websockets: the launcher's uvicorn_options() for the same command line, with uvicorn's
    websockets implementation (on websockets' legacy API, deprecated by uvicorn 0.55: a warning in
    its log) instead of the launcher's wsproto protocol; everything else as uvicorn-wsproto.

    granian: the ASGI interface without lifespan ("asginl"), one worker with one runtime thread,
    asyncio, HTTP/1, access log. It has no WebSocket message limit or ping options: it keeps its
    own (no server pings, tungstenite's 64 MiB message limit). Its --backpressure caps the
    connections a worker accepts, every WebSocket held for its life, at backlog/workers (1024) by
    default: raised above the run's connections so that a large run meets the server, not the cap.
    """
    listen = ["--bind=127.0.0.1", f"--port={port}"]
    if args.server in LAUNCHED:
        return [sys.executable, "-m", "djchat.asgi_server", f"--server={LAUNCHED[args.server]}",
                *listen]  # fmt: skip
    if args.server == "uvicorn-websockets":
        return [sys.executable, "-c", UVICORN_WEBSOCKETS, *listen]
    connections = args.rooms * args.clients
    return [
        sys.executable, "-m", "granian", "--interface", "asginl",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--runtime-threads", "1",
        "--loop", "asyncio", "--http", "1", "--backpressure", str(max(1024, 2 * connections)),
        "--access-log", "--log-level", "info", "djchat.asgi:application",
    ]  # fmt: skip


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
        command = server_command(args, port)
        if args.server == "granian":
            # After the app, before the venv: granian and nothing else comes from there.
            env["PYTHONPATH"] = os.pathsep.join([str(app), str(Path(args.servers_path).resolve())])
        log = (workdir / f"{args.server}.log").open("w")
        server = subprocess.Popen(command, cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_health(port, server, args.server)
            pid = serving_pid(server, args.server)
            redis_before = process_cpu_seconds(redis.process.pid)
            supervisor_before = process_cpu_seconds(server.pid)
            result = wsload(f"ws://127.0.0.1:{port}", pid, args)
            result["redis_cpu_seconds"] = process_cpu_seconds(redis.process.pid) - redis_before
            if pid != server.pid:
                spent = process_cpu_seconds(server.pid) - supervisor_before
                result["supervisor_cpu_seconds"] = round(spent, 3)
        except BaseException:
            log.flush()
            print((workdir / f"{args.server}.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            servers.stop(server)
            log.close()
    result["server"] = args.server
    result["server_versions"] = server_versions(args)
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
    parser.add_argument(
        "--server", choices=SERVERS, default="daphne", help="the ASGI server that serves the app"
    )
    parser.add_argument(
        "--servers-path",
        default=SERVERS_PATH,
        help="where granian is installed (pip --target), for --server granian",
    )
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rates", default="10,50,100")
    parser.add_argument("--step-seconds", type=float, default=6)
    parser.add_argument("--drain-seconds", type=float, default=6)
    args = parser.parse_args()
    if args.floor and args.server != "daphne":
        parser.error("--floor measures bench/floor.py, which is no ASGI app: leave --server out")
    if args.floor:
        result = run_floor(args)
    else:
        if args.server == "granian":
            check_servers_path(args)
        with tempfile.TemporaryDirectory(prefix="onedaphne-") as workdir:
            result = run_app(args, Path(workdir))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
