"""make bench-cluster: the chat's fan-out through a three-node swarm against one host.

Both sides run the same release (HEAD, snapshotted as bench/run.py does), the same base images
and replica counts (the cluster scenario's, molecule/cluster/group_vars/djchat.yml) and the
defaults profile (bench/profiles/defaults.yml), and take the same fan-out load (bench/wsload.py):

  one host   the compose stack of bench/run.py (djchat-bench on 127.0.0.1:18090)
  cluster    the Molecule cluster scenario's three Docker-in-Docker nodes (create, prepare,
             converge), every room's clients, its sender among them, spread over the nodes'
             published ports (127.0.0.1:18301-18303)

Both stay up while either is measured, and the rounds alternate (one host, cluster, cluster, one
host, ...): the idle side costs the measured one the same in every round. The nodes share this
machine's two cores, so the ratios measure what clustering costs (an overlay network, a Redis
and a database across it, three engines), never what it gains: on separate machines each node
brings cores of its own.

    python bench/cluster.py            # about 20 min: bench/results/cluster/
    python bench/cluster.py --keep     # leave both stacks up afterwards
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import yaml

from run import BENCH, FULL, QUICK, REPO, Bench, log

SCENARIO = REPO / "molecule" / "cluster"
NODE_PREFIX = "djchat-cluster-"
# What the one-host stack takes from the cluster scenario, so that both run the same Python,
# nginx and Redis with the same replica counts.
SHARED = re.compile(
    r"^djchat_((python|nginx|redis)_image|wheelhouse_.*|(wsgi|asgi)_replicas|base_images_debian_suite)$"
)


class ClusterBench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.results or BENCH / "results" / "cluster")
        self.host = Bench(
            argparse.Namespace(
                quick=args.quick,
                rounds=None,
                results=str(self.out),
                skip=["deploy", "http", "capacity", "images"],
                keep=args.keep,
                no_raise_proxy_nofile=True,
                profiles=["defaults"],
            )
        )
        self.load = QUICK if args.quick else FULL
        platforms = yaml.safe_load((SCENARIO / "molecule.yml").read_text())["platforms"]
        self.node_urls = [f"ws://127.0.0.1:{p['published_port']}" for p in platforms]
        group_vars = yaml.safe_load((SCENARIO / "group_vars" / "djchat.yml").read_text())
        self.shared = {key: value for key, value in group_vars.items() if SHARED.match(key)}
        self.results: dict = {
            "shared_with_cluster": self.shared,
            "nodes": len(platforms),
            "sides": {"host": {"rounds": []}, "cluster": {"rounds": []}},
            "notes": [],
        }

    def molecule(self, action: str, name: str, *ansible_args: str) -> float:
        """`molecule <action> -s cluster` from the snapshot; returns its wall time. The snapshot
        has no .git, from which Molecule finds the shared base config: it is named here."""
        base = self.host.src / ".config" / "molecule" / "config.yml"
        argv = [
            str(self.host.bin / "molecule"),
            "--base-config",
            str(base),
            action,
            "-s",
            "cluster",
        ]
        if ansible_args:
            argv += ["--", *ansible_args]
        _, seconds = self.host.sh(
            argv, f"cluster-{name}", cwd=self.host.src, env=self.host.ansible_env(), timeout=3600
        )
        log(f"cluster {name}: {seconds:.0f} s")
        return round(seconds, 1)

    def up(self) -> None:
        host = self.host
        host.snapshot()
        self.results["commit"] = host.results["commit"]
        self.results["notes"] += host.results["notes"]
        host.teardown("host-teardown-before")
        self.molecule("destroy", "destroy-before")
        # The one host's base images are the cluster's (the nodes build theirs the same way).
        suite = ["-e", json.dumps({"djchat_base_images_debian_suite": self.shared.get(
            "djchat_base_images_debian_suite", "bookworm")})]  # fmt: skip
        host.sh(
            [str(host.bin / "ansible-playbook"), "playbooks/base_images.yml", *suite],
            "host-base-images",
            cwd=host.src,
            env=host.ansible_env(),
            timeout=3600,
        )
        self.results["host_converge"] = host.playbook(
            "site.yml", "defaults", "host-converge", ["-e", json.dumps(self.shared)]
        )
        profile = f"@{BENCH / 'profiles' / 'defaults.yml'}"
        self.results["cluster_up_seconds"] = {
            step: self.molecule(step, step, *(["-e", profile] if step == "converge" else []))
            for step in ("create", "prepare", "converge")
        }

    def measure(self, side: str, round_index: int) -> None:
        if side == "host":
            result = self.host.fanout("host", round_index)
        else:
            result = self.host.fanout(
                "cluster", round_index, urls=self.node_urls, measure=["--nodes", NODE_PREFIX]
            )
        self.results["sides"][side]["rounds"].append(result)
        self.save()

    def down(self) -> None:
        self.host.teardown("host-teardown-after")
        self.molecule("destroy", "destroy-after")

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.results["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1) + "\n")

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.up()
            time.sleep(5)
            for round_index in range(self.args.rounds):
                order = ("host", "cluster") if round_index % 2 == 0 else ("cluster", "host")
                for side in order:
                    log(f"=== {side}, round {round_index + 1} ===")
                    self.measure(side, round_index)
        finally:
            self.results["elapsed_seconds"] = round(time.monotonic() - started)
            self.save()
            if not self.args.keep:
                self.down()
        write_report(self.out, self.results)
        log(f"done in {time.monotonic() - started:.0f} s: {self.out / 'results.md'}")


# --- report -------------------------------------------------------------------------------------


def best_round(rounds: list[dict]) -> dict:
    """The round that sustained the most deliveries within the p99 aim (other work on the cores
    only ever makes a round slower)."""
    return max(
        rounds,
        key=lambda r: (
            r.get("best_delivered_rate_within_p99_limit", 0),
            max((s["delivered_rate"] for s in r.get("steps", [])), default=0),
        ),
        default={},
    )


def cpu_us(step: dict) -> float | None:
    return step.get("stack_cpu_us_per_delivery")


def write_report(out: Path, results: dict) -> None:
    host = best_round(results["sides"]["host"]["rounds"])
    cluster = best_round(results["sides"]["cluster"]["rounds"])
    by_rate = {
        side: {s["offered_send_rate"]: s for s in best.get("steps", [])}
        for side, best in (("host", host), ("cluster", cluster))
    }
    rates = sorted(set(by_rate["host"]) | set(by_rate["cluster"]))

    def fmt(value, digits=0):
        return "—" if value is None else f"{value:,.{digits}f}"

    def ratio(a, b):
        return "—" if not a or not b else f"{a / b:.2f}×"

    best_host = host.get("best_delivered_rate_within_p99_limit")
    best_cluster = cluster.get("best_delivered_rate_within_p99_limit")
    lost = {
        side: sum(s["lost"] for r in results["sides"][side]["rounds"] for s in r.get("steps", []))
        for side in ("host", "cluster")
    }
    lines = [
        "# Fan-out: three swarm nodes against one host, on the same two cores",
        "",
        f"`make bench-cluster` (bench/cluster.py), commit {results.get('commit', '?')[:12]}, "
        f"{results.get('finished', '?')}, {len(results['sides']['host']['rounds'])} rounds per side "
        "(the best shown). Same release, images and replicas on both sides "
        f"({', '.join(f'{k}={v}' for k, v in results['shared_with_cluster'].items())}), the role's "
        "defaults (bench/profiles/defaults.yml); "
        f"{host.get('rooms', '?')} rooms × {host.get('clients_per_room', '?')} clients, one sender "
        "per room at increasing rates; in the cluster every room's clients are spread over the "
        f"{results['nodes']} nodes.",
        "",
        "**The nodes share this machine's two cores**: these figures are what clustering costs "
        "(the overlay network between nodes, Redis and PostgreSQL on other nodes, three engines), "
        "not what it gains. On separate machines each node brings its own cores.",
        "",
        "| | one host | three nodes | three / one |",
        "|---|---:|---:|---:|",
        f"| deliveries/s within p99 < 100 ms, 0 lost | {fmt(best_host)} | {fmt(best_cluster)} "
        f"| {ratio(best_cluster, best_host)} |",
        f"| most deliveries/s at any latency | "
        f"{fmt(max((s['delivered_rate'] for s in host.get('steps', [])), default=None))} | "
        f"{fmt(max((s['delivered_rate'] for s in cluster.get('steps', [])), default=None))} | |",
        f"| messages lost, every round | {lost['host']} | {lost['cluster']} | |",
        "",
        "| send rate /s | deliveries offered /s | one host p50 / p99 ms | three nodes p50 / p99 ms "
        "| one host CPU µs / delivery | three nodes CPU µs / delivery | CPU three / one |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in rates:
        h, c = by_rate["host"].get(rate, {}), by_rate["cluster"].get(rate, {})
        offered = (h or c).get("offered_delivery_rate")
        lines.append(
            f"| {rate:g} | {fmt(offered)} | {fmt(h.get('p50_ms'), 1)} / {fmt(h.get('p99_ms'), 1)} "
            f"| {fmt(c.get('p50_ms'), 1)} / {fmt(c.get('p99_ms'), 1)} "
            f"| {fmt(cpu_us(h))} | {fmt(cpu_us(c))} | {ratio(cpu_us(c), cpu_us(h))} |"
        )
    lines += [
        "",
        "CPU per delivery: on one host, the stack's containers (cgroups); in the cluster, the three "
        "node containers whole, each node's own engine included (what a node of a cluster runs). "
        "The senders' posts are part of every delivery's share.",
    ]
    if results.get("notes"):
        lines += ["", *(f"- {note}" for note in results["notes"])]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small loads (development)")
    parser.add_argument("--rounds", type=int, default=2, help="fan-out rounds per side")
    parser.add_argument("--keep", action="store_true", help="leave both stacks up")
    parser.add_argument("--results", help="output directory (default bench/results/cluster)")
    parser.add_argument(
        "--report", action="store_true", help="rewrite results.md from results.json only"
    )
    args = parser.parse_args(argv)
    if args.report:
        out = Path(args.results or BENCH / "results" / "cluster")
        write_report(out, json.loads((out / "results.json").read_text()))
        return 0
    ClusterBench(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
