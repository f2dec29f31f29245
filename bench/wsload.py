"""WebSocket load for the benchmarks: fan-out throughput and latency, and idle-connection capacity.

bench/run.py starts this as its own process (a raised file limit, an event loop and CPU accounting
of its own) and reads the one JSON document it prints. Its clients are the repository's one chat
client, tests/chatclient.py, found through PYTHONPATH (run.py sets it). By hand, from the root:

    PYTHONPATH=tests python bench/wsload.py fanout --url ws://127.0.0.1:18090 --rooms 4 --clients 10 --rates 10,40
    PYTHONPATH=tests python bench/wsload.py capacity --url ws://127.0.0.1:18090 --target 1000 --project djchat-bench

The protocol is the app's (README.md, "WebSocket protocol"): connect to /ws/chat/<room>/?nick=..
with an Origin the site accepts, read the history frame, send {"type": "message", "text": ..};
every member of the room, the sender included, receives the MESSAGE frame with the room's next id.
A bench message's text carries the step, the sender and the send time (time.perf_counter of this
process, which also receives it), so the end-to-end latency needs no clock synchronisation.

Every loop is bounded: steps by the rate list, each step by --step-seconds plus --drain-seconds,
the capacity ramp by --target and --ramp-seconds, every connect and close by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import stackinfo
from chatclient import ChatClient

BENCH_PREFIX = "bench"
CONNECT_TIMEOUT_S = 20.0
CLOSE_TIMEOUT_S = 30.0
# Files docker-proxy holds per proxied connection (two sockets, a splice pipe per direction),
# and the files kept spare for everything else it does.
PROXY_FILES_PER_CONNECTION = 6
PROXY_FILE_MARGIN = 500


def raise_file_limit() -> int:
    """Every socket is a file: take the hard limit as the soft one."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def http_form(ws_url: str) -> str:
    """The page's origin for a WebSocket URL: ws://host:port -> http://host:port."""
    return ws_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1).rstrip("/")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class StepStats:
    latencies: list[float] = field(default_factory=list)
    received: int = 0
    last_at: float = 0.0


class Load:
    """The clients of one run and what they received."""

    def __init__(self, base_urls: list[str], origin: str | None):
        self.base_urls = [url.rstrip("/") for url in base_urls]
        self.origin = origin
        self.steps: dict[int, StepStats] = {}
        self.readers: dict[ChatClient, asyncio.Task] = {}

    def client(self, room: str, nick: str, index: int = 0) -> ChatClient:
        """A client of the index-th base URL, round robin (a cluster's nodes, each its own URL)."""
        base_url = self.base_urls[index % len(self.base_urls)]
        return ChatClient(
            base_url,
            room,
            nick,
            origin=self.origin or http_form(base_url),
            timeout=CONNECT_TIMEOUT_S,
            record=False,  # frames are counted as they come, not kept
            compression=None,  # the measured cost is the stack's, not zlib's in this client
            ping_interval=None,  # the asgi server pings; the client answers
            close_timeout=5,
        )

    async def open(self, client: ChatClient, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Connect and read the history frame (the server has then joined the room), then read
        whatever comes in a task of its own."""
        await client.connect(timeout=timeout)
        self.readers[client] = asyncio.create_task(self.read(client))

    def reading(self, client: ChatClient) -> bool:
        """The connection is open and its reader still reads."""
        reader = self.readers.get(client)
        return client.ws is not None and reader is not None and not reader.done()

    async def read(self, client: ChatClient) -> None:
        """Time every bench message as it arrives (ChatClient.recv keeps the last id, the ids
        out of order and the error codes)."""
        steps = self.steps
        with contextlib.suppress(Exception):
            while True:
                frame = await client.recv()
                if frame["type"] == "message" and frame["text"].startswith(BENCH_PREFIX + " "):
                    _, step, _sender, _seq, sent_at = frame["text"].split(" ")
                    stats = steps.setdefault(int(step), StepStats())
                    stats.latencies.append(client.received_at - float(sent_at))
                    stats.received += 1
                    stats.last_at = client.received_at

    async def abort(self, client: ChatClient) -> None:
        reader = self.readers.pop(client, None)
        if reader is not None:
            reader.cancel()
        await client.abort()

    async def close_all(self, clients: list[ChatClient]) -> dict:
        """Close every connection cleanly within CLOSE_TIMEOUT_S, then abort what is left."""
        started = time.perf_counter()
        pending = [asyncio.create_task(client.close()) for client in clients]
        done, not_done = (
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S) if pending else ((), ())
        )
        for client in clients:
            await self.abort(client)
        for task in not_done:
            task.cancel()
        return {
            "closed": len(done),
            "aborted": len(not_done),
            "seconds": time.perf_counter() - started,
        }


async def open_many(load: Load, clients: list[ChatClient], concurrency: int) -> list[ChatClient]:
    """Open the clients with at most `concurrency` handshakes in flight; return the failures."""
    gate = asyncio.Semaphore(concurrency)
    failed: list[ChatClient] = []

    async def one(client: ChatClient) -> None:
        async with gate:
            try:
                await load.open(client)
            except Exception:  # noqa: BLE001 (any failure counts as a failed connect)
                failed.append(client)

    await asyncio.gather(*(one(client) for client in clients))
    return failed


# --- fan-out ------------------------------------------------------------------------------------


async def send_at_rate(
    client: ChatClient, step: int, rate: float, seconds: float, index: int, phase: float
) -> int:
    """Open-loop sender: message k leaves at start + (k + phase) / rate whatever the replies do.

    The senders of different rooms get evenly spread phases (0 <= phase < 1), so the total
    offered rate arrives as a steady stream rather than in bursts of one message per room at
    the same instant, which would queue behind each other and measure the burst, not the rate.
    """
    count = max(1, round(rate * seconds))
    start = time.perf_counter()
    sent = 0
    for k in range(count):
        delay = start + (k + phase) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        text = f"{BENCH_PREFIX} {step} {index} {k} {time.perf_counter():.6f}"
        try:
            await client.send({"type": "message", "text": text})
        except Exception:  # noqa: BLE001 (a closed connection ends this sender)
            break
        sent += 1
    return sent


def spread_senders(rooms: list[str], members: dict[str, list[ChatClient]]) -> list[ChatClient]:
    """One sender per room, the rooms' senders spread evenly over the asgi processes.

    A sender's process stores and publishes every message of its room, the most expensive part
    of a delivery. Taking each room's first client put all ten senders on one of two asgi
    replicas (nginx alternates, and every room has an even number of clients), which then did
    twice the other's work: the knee measured that replica, not the stack.
    """
    processes = sorted({client.served_by for room in rooms for client in members[room]})
    senders = []
    for r, room in enumerate(rooms):
        wanted = processes[r % len(processes)]
        on_wanted = [client for client in members[room] if client.served_by == wanted]
        senders.append(on_wanted[0] if on_wanted else members[room][0])
    return senders


async def fanout(args: argparse.Namespace) -> dict:
    load = Load(args.url, args.origin)
    rooms = [f"{args.room_prefix}-{r}" for r in range(args.rooms)]
    # With several URLs (nodes), each room's members, its sender among them, span all of them.
    members = {
        room: [load.client(room, f"b{r}c{c}", index=r + c) for c in range(args.clients)]
        for r, room in enumerate(rooms)
    }
    clients = [client for room in rooms for client in members[room]]

    started = time.perf_counter()
    failed = await open_many(load, clients, args.concurrency)
    connect_seconds = time.perf_counter() - started
    result: dict = {
        "rooms": args.rooms,
        "clients_per_room": args.clients,
        "connections": len(clients),
        "connect_failures": len(failed),
        "connect_seconds": round(connect_seconds, 2),
        "step_seconds": args.step_seconds,
        "p99_limit_ms": args.p99_limit_ms,
        "steps": [],
    }
    if failed:
        result["error"] = f"{len(failed)} of {len(clients)} clients could not connect"
        await load.close_all(clients)
        return result
    await asyncio.sleep(args.settle_seconds)  # the join presence broadcasts die down
    senders = spread_senders(rooms, members)
    result["senders_per_process"] = dict(Counter(client.served_by for client in senders))

    for step, rate in enumerate(args.rates):
        per_room = rate / args.rooms
        host_before = stackinfo.host_cpu_times()
        meter = stackinfo.CpuMeter(args.project, args.port, args.nodes, args.pid)
        meter.start()
        cpu_before = cpu_seconds()
        step_start = time.perf_counter()
        sent = await asyncio.gather(
            *(
                send_at_rate(sender, step, per_room, args.step_seconds, r, r / args.rooms)
                for r, sender in enumerate(senders)
            )
        )
        send_end = time.perf_counter()
        expected = sum(count * args.clients for count in sent)
        stats = load.steps.setdefault(step, StepStats())
        deadline = send_end + args.drain_seconds
        while stats.received < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
        # Message k leaves at k / rate: the send window is the step, whatever the last sleep did.
        window = max(args.step_seconds, (stats.last_at or send_end) - step_start)
        latencies = sorted(stats.latencies)
        client_cpu = (cpu_seconds() - cpu_before) / max(1e-9, time.perf_counter() - step_start)
        cpu = meter.stop()
        stack_cpu = cpu.get("stack_cpu_seconds", {})
        engine_cpu = cpu.get("engine_cpu_seconds", {})
        row = {
            "offered_send_rate": rate,
            "offered_delivery_rate": rate * args.clients,
            "sent": sum(sent),
            "expected": expected,
            "delivered": stats.received,
            "lost": max(0, expected - stats.received),
            "send_rate": round(sum(sent) / args.step_seconds, 1),
            "delivered_rate": round(stats.received / max(1e-9, window), 1),
            "p50_ms": round(1000 * percentile(latencies, 50), 2) if latencies else None,
            "p99_ms": round(1000 * percentile(latencies, 99), 2) if latencies else None,
            "max_ms": round(1000 * latencies[-1], 2) if latencies else None,
            "host_cpu_busy": stackinfo.host_cpu_busy(host_before),
            "client_cpu": round(client_cpu, 2),
            "stack_cpu_seconds": stack_cpu,
            "engine_cpu_seconds": engine_cpu,
            # CPU the stack spent per delivered message (senders' posts included).
            "stack_cpu_us_per_delivery": (
                round(1e6 * sum(stack_cpu.values()) / stats.received, 1)
                if stack_cpu and stats.received
                else None
            ),
        }
        stats.latencies = []  # keep memory flat across steps
        result["steps"].append(row)
        print(f"fanout step {step}: {json.dumps(row)}", file=sys.stderr, flush=True)
        saturated = (
            row["delivered_rate"] < args.min_delivered_fraction * row["offered_delivery_rate"]
        )
        if row["lost"] or saturated or (row["p99_ms"] or 0) > args.stop_p99_ms:
            result["stopped"] = (
                "lost messages"
                if row["lost"]
                else ("saturated" if saturated else "p99 above the stop limit")
            )
            break
        await asyncio.sleep(args.pause_seconds)

    result["out_of_order"] = sum(client.out_of_order for client in clients)
    result["errors"] = dict(sum((client.errors for client in clients), Counter()))
    result["close"] = await load.close_all(clients)
    good = [
        s
        for s in result["steps"]
        if s["lost"] == 0 and s["p99_ms"] is not None and s["p99_ms"] < args.p99_limit_ms
    ]
    result["best_delivered_rate_within_p99_limit"] = max(
        (s["delivered_rate"] for s in good), default=0
    )
    return result


# --- capacity -----------------------------------------------------------------------------------


async def capacity(args: argparse.Namespace) -> dict:
    load = Load(args.url, args.origin)
    proxy = stackinfo.docker_proxy(args.port)
    proxy_limit = None
    if proxy and args.raise_proxy_nofile:
        proxy_limit = stackinfo.raise_proxy_file_limit(proxy["pid"], 8 * args.target + 1024)
    baseline = await asyncio.to_thread(stackinfo.memory_by_container, args.project)
    proxy_before = stackinfo.docker_proxy(args.port)
    # docker-proxy exits when it runs out of files, and the published port stays dead until the
    # container restarts: stop the ramp short of its limit rather than break the stack.
    target = args.target
    proxy_cap = None
    if proxy_before and proxy_before["file_limit"][0]:
        spare = proxy_before["file_limit"][0] - proxy_before["open_files"] - PROXY_FILE_MARGIN
        proxy_cap = max(0, spare // PROXY_FILES_PER_CONNECTION)
        target = min(target, proxy_cap)

    clients: list[ChatClient] = []
    held = 0
    failures: Counter = Counter()
    consecutive_failures = 0
    timeline: list[tuple[float, int, int]] = []
    gate = asyncio.Semaphore(args.concurrency)
    started = time.perf_counter()
    deadline = started + args.ramp_seconds
    stop = asyncio.Event()

    async def one(index: int) -> None:
        nonlocal held, consecutive_failures
        async with gate:
            if stop.is_set() or time.perf_counter() > deadline:
                return
            room = f"{args.room_prefix}-{index // args.per_room}"
            client = load.client(room, f"i{index}", index=index)
            try:
                await load.open(
                    client,
                    timeout=min(CONNECT_TIMEOUT_S, max(1.0, deadline - time.perf_counter())),
                )
            except Exception as error:  # noqa: BLE001
                failures[type(error).__name__] += 1
                consecutive_failures += 1
                if consecutive_failures >= args.max_consecutive_failures:
                    stop.set()
                return
            consecutive_failures = 0
            clients.append(client)
            held += 1

    async def sample() -> None:
        while True:
            timeline.append((round(time.perf_counter() - started, 1), held, sum(failures.values())))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample())
    host_before = stackinfo.host_cpu_times()
    await asyncio.gather(*(one(i) for i in range(target)))
    ramp_seconds = time.perf_counter() - started
    opened = held

    # Hold: the connections stay open, idle but for the asgi server's pings and the app's presence
    # heartbeats; count the ones still open at the end.
    await asyncio.sleep(args.hold_seconds)
    alive = sum(1 for client in clients if load.reading(client))
    held_memory = await asyncio.to_thread(stackinfo.memory_by_container, args.project)
    proxy_held = stackinfo.docker_proxy(args.port)
    host_busy = stackinfo.host_cpu_busy(host_before)
    timeline.append((round(time.perf_counter() - started, 1), alive, sum(failures.values())))
    sampler.cancel()

    close = await load.close_all(clients)
    stack_delta = sum(held_memory.values()) - sum(baseline.get(name, 0) for name in held_memory)
    result = {
        "target": args.target,
        "proxy_cap": proxy_cap,
        "limited_by_proxy": target < args.target,
        "opened": opened,
        "held": alive,
        "ramp_seconds": round(ramp_seconds, 1),
        "hold_seconds": args.hold_seconds,
        "failures": dict(failures),
        "stopped_early": stop.is_set(),
        "memory_baseline_bytes": baseline,
        "memory_held_bytes": held_memory,
        "memory_per_connection_bytes": round(stack_delta / alive) if alive else None,
        "host_cpu_busy": host_busy,
        "docker_proxy": {
            "file_limit": proxy_limit,
            # Files the proxy holds per connection, and the connections its limit allows.
            "files_per_connection": (
                round((proxy_held["open_files"] - proxy_before["open_files"]) / alive, 2)
                if alive and proxy_before and proxy_held and proxy_held["open_files"]
                else None
            ),
            "before": proxy_before,
            "held": proxy_held,
            "rss_per_connection_bytes": (
                round((proxy_held["rss_bytes"] - proxy_before["rss_bytes"]) / alive)
                if alive and proxy_before and proxy_held
                else None
            ),
        },
        "client_rss_bytes": stackinfo.rss_bytes(os.getpid()),
        "close": close,
        "timeline": timeline,
    }
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        type=lambda s: s.split(","),
        default=["ws://127.0.0.1:18090"],
        help="WebSocket base URL (nginx); a comma list spreads the clients over them (a cluster's nodes)",
    )
    parser.add_argument(
        "--origin",
        default=None,
        help="Origin header (default: the http:// form of each client's --url)",
    )
    parser.add_argument("--room-prefix", default="bench")
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes in flight at once")
    sub = parser.add_subparsers(dest="mode", required=True)

    fan = sub.add_parser(
        "fanout", help="R rooms x C clients, one sender per room at increasing rates"
    )
    fan.add_argument("--rooms", type=int, default=10)
    fan.add_argument("--project", default=None, help="compose project whose CPU time is measured")
    fan.add_argument("--port", type=int, default=18090, help="published port (docker-proxy)")
    fan.add_argument(
        "--nodes",
        default=None,
        help="measure the CPU of the containers named with this prefix (a cluster's nodes) instead",
    )
    fan.add_argument(
        "--pid", type=int, default=None, help="measure this process's CPU instead (the floor relay)"
    )
    fan.add_argument(
        "--clients", type=int, default=20, help="clients per room, the sender included"
    )
    fan.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[10, 50, 100],
        help="total messages sent per second, one step each",
    )
    fan.add_argument("--step-seconds", type=float, default=10)
    fan.add_argument(
        "--drain-seconds",
        type=float,
        default=10,
        help="wait for late deliveries after a step",
    )
    fan.add_argument("--pause-seconds", type=float, default=1)
    fan.add_argument("--settle-seconds", type=float, default=2)
    fan.add_argument(
        "--p99-limit-ms",
        type=float,
        default=100,
        help="the latency aim a step is judged by",
    )
    fan.add_argument(
        "--stop-p99-ms",
        type=float,
        default=2000,
        help="no further steps above this p99",
    )
    fan.add_argument(
        "--min-delivered-fraction",
        type=float,
        default=0.8,
        help="no further steps once deliveries fall below this share of the offered rate",
    )

    cap = sub.add_parser("capacity", help="ramp idle connections toward --target and hold them")
    cap.add_argument("--target", type=int, default=10000)
    cap.add_argument("--per-room", type=int, default=20, help="connections per room")
    cap.add_argument("--ramp-seconds", type=float, default=150)
    cap.add_argument("--hold-seconds", type=float, default=15)
    cap.add_argument("--max-consecutive-failures", type=int, default=200)
    cap.add_argument(
        "--project",
        default="djchat-bench",
        help="compose project whose memory is measured",
    )
    cap.add_argument(
        "--port",
        type=int,
        default=18090,
        help="published port (its docker-proxy is measured)",
    )
    cap.add_argument(
        "--raise-proxy-nofile",
        action="store_true",
        help="raise the file limit of this port's docker-proxy process (see bench/README.md)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    limit = raise_file_limit()
    runner = fanout if args.mode == "fanout" else capacity
    result = asyncio.run(runner(args))
    result["client_file_limit"] = limit
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
