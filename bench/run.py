"""make bench: the seed configuration against this stack, on this machine.

Deploys the app with the role (playbooks/site.yml) under three profiles, one after another, on
the same images and data, and measures each with the same load:

  seed       bench/profiles/seed.yml      the configuration this project grew from
  defaults   bench/profiles/defaults.yml  the role's defaults
  max        bench/profiles/max.yml       tuned for this machine (2 cores)

  HTTP       wrk on / (room list, a database read) and /healthz, at fixed concurrency levels
  fan-out    R rooms x C WebSocket clients, senders at increasing rates (bench/wsload.py)
  relay      the same fan-out on bench/floor.py, plain websockets in one process: the floor the
             fan-out figures are also given against (issue 16)
  capacity   idle WebSocket connections ramped toward 10,000 and held; memory per connection
  deploy     cold and warm converge, next to a bare `docker compose up -d --wait` (the floor)
  images     the role's app image next to a seed-style image (bench/seedstyle/Dockerfile)

The bench deploys its own compose project (bench/harness.yml: djchat-bench on 127.0.0.1:18090,
/srv/djchat-bench, image djchat-bench/app) from a snapshot of the repository's HEAD, so edits in
progress elsewhere in the tree neither change nor break a run, and takes it down, volumes and
images included, at the end. Results: bench/results/ (results.md, results.json, *.png).

    python bench/run.py            # full run (< 30 min)
    python bench/run.py --quick    # small loads for development (< 5 min), bench/results/quick/
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

import httpload
import report
import stackinfo

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

HARNESS = BENCH / "harness.yml"
PROFILES = ["seed", "defaults", "max"]  # the order of the table
# The first deploy of a run is the cold one, and the cold converge that matters is the role's
# defaults; the other profiles follow, each a converge from the one before.
RUN_ORDER = ["defaults", "seed", "max"]
SEEDSTYLE_TAG = "djchat-bench-seedstyle:latest"
FLOOR_PORT = 18099  # bench/floor.py, on 127.0.0.1
NOCACHE_TAG = "nocache-build"
WORK = Path("/tmp/djchat-bench")
# Keys only the harness may set: the bench's isolation, and the engine it shares with others.
HARNESS_ONLY = re.compile(
    r"^djchat_(compose_project|project_dir|app_image_name|bind_address|http_port|https_port|server_names|docker_.*|prune_.*)$"
)


@dataclass
class Load:
    """How much load each measurement puts on the stack."""

    http_levels: list[int]
    http_seconds: float
    fan_rooms: int
    fan_clients: int
    fan_rates: list[float]
    fan_step_seconds: float
    fan_drain_seconds: float
    cap_target: int
    cap_ramp_seconds: float
    cap_hold_seconds: float
    nocache_builds: bool
    # HTTP and fan-out are measured this many times per profile, the profiles interleaved
    # (defaults, seed, max, then max, seed, defaults), and the best round is reported: other
    # work on the cores only ever makes a round slower. A further round starts only while the
    # run is younger than round_deadline_seconds, to stay within 30 minutes.
    rounds: int = 1
    round_deadline_seconds: float = 0
    extra: dict = field(default_factory=dict)


FULL = Load(
    http_levels=[16, 64, 256],
    http_seconds=6,
    fan_rooms=10,
    fan_clients=20,
    fan_rates=[10, 25, 50, 75, 100, 150, 200, 400],
    fan_step_seconds=6,
    fan_drain_seconds=6,
    cap_target=10000,
    cap_ramp_seconds=120,
    cap_hold_seconds=15,
    nocache_builds=False,
    rounds=2,
    round_deadline_seconds=900,
)
QUICK = Load(
    http_levels=[16, 64],
    http_seconds=3,
    fan_rooms=4,
    fan_clients=10,
    fan_rates=[10, 40, 100],
    fan_step_seconds=3,
    fan_drain_seconds=5,
    cap_target=1000,
    cap_ramp_seconds=30,
    cap_hold_seconds=5,
    nocache_builds=False,
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.load = QUICK if args.quick else FULL
        if args.rounds:
            self.load.rounds = args.rounds
            self.load.round_deadline_seconds = self.load.round_deadline_seconds or 3600
        self.out = Path(args.results or (BENCH / "results" / ("quick" if args.quick else "")))
        self.logs = self.out / "logs"
        self.harness = yaml.safe_load(HARNESS.read_text())
        self.project = self.harness["djchat_compose_project"]
        self.project_dir = Path(self.harness["djchat_project_dir"])
        self.port = int(self.harness["djchat_http_port"])
        self.http_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.src = WORK / "src"
        self.bin = Path(sys.executable).parent
        self.results: dict = {"profiles": {}, "deploy": {}, "images": {}, "notes": []}
        self.started = time.monotonic()
        self.stamp = time.strftime("%H%M%S")

    # --- plumbing -------------------------------------------------------------------------------

    def sh(
        self,
        argv: list[str],
        name: str,
        timeout: float = 900,
        check: bool = True,
        cwd: Path | None = None,
        env: dict | None = None,
    ) -> tuple[subprocess.CompletedProcess, float]:
        """Run a command with its output in logs/<name>.log; return it and its wall time."""
        self.logs.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.logs / f"{name}.log", "w") as out:
            out.write("$ " + " ".join(argv) + "\n")
            out.flush()
            completed = subprocess.run(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
                cwd=cwd,
                env=env,
            )
        seconds = time.monotonic() - started
        if check and completed.returncode != 0:
            tail = (self.logs / f"{name}.log").read_text().splitlines()[-25:]
            raise SystemExit(
                f"{' '.join(argv[:3])} failed ({completed.returncode}); see {self.logs}/{name}.log:\n"
                + "\n".join(tail)
            )
        return completed, seconds

    def ansible_env(self) -> dict:
        env = dict(os.environ)
        env["ANSIBLE_CONFIG"] = str(self.src / "ansible.cfg")
        env["ANSIBLE_NOCOLOR"] = "1"
        env["PATH"] = f"{self.bin}:{env.get('PATH', '')}"
        return env

    def playbook(
        self, playbook: str, profile: str | None, name: str, extra: list[str] = ()
    ) -> dict:
        argv = [str(self.bin / "ansible-playbook"), f"playbooks/{playbook}"]
        if profile:
            argv += ["-e", f"@{BENCH / 'profiles' / (profile + '.yml')}"]
        argv += [
            "-e",
            f"@{HARNESS}",
            "-e",
            f"djchat_controller_cache_dir={REPO / '.cache' / 'djchat-bench'}",
            *extra,
        ]
        _, seconds = self.sh(argv, name, cwd=self.src, env=self.ansible_env(), timeout=1200)
        recap = re.search(
            r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
            (self.logs / f"{name}.log").read_text(),
        )
        changed = int(recap.group(2)) if recap else None
        log(f"{name}: {seconds:.1f} s, changed={changed}")
        return {"seconds": round(seconds, 1), "changed": changed}

    def compose(self, *args: str, name: str) -> dict:
        argv = [
            "docker",
            "compose",
            "--project-directory",
            str(self.project_dir),
            "-f",
            str(self.project_dir / "compose.yml"),
            *args,
        ]
        completed, seconds = self.sh(argv, name, timeout=600, check=False)
        log(f"{name}: {seconds:.1f} s, exit {completed.returncode}")
        return {"seconds": round(seconds, 1), "ok": completed.returncode == 0}

    def compose_up(self, name: str) -> dict:
        """`docker compose up -d --wait`; a failure is recorded, then the stack is brought back."""
        result = self.compose("up", "-d", "--wait", "--wait-timeout", "300", name=name)
        if not result["ok"]:
            self.results["notes"].append(
                f"`docker compose up -d --wait` ({name}) failed after {result['seconds']} s; "
                f"see logs/{name}.log. The stack was brought up again before measuring."
            )
            time.sleep(10)
            if not self.compose(
                "up", "-d", "--wait", "--wait-timeout", "300", name=name + "-retry"
            )["ok"]:
                raise SystemExit(f"the stack does not come up: see {self.logs}/{name}-retry.log")
        return result

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.results["elapsed_seconds"] = round(time.monotonic() - self.started)
        self.results["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1) + "\n")

    # --- preparation ----------------------------------------------------------------------------

    def check_profiles(self) -> None:
        for name in PROFILES:
            values = yaml.safe_load((BENCH / "profiles" / f"{name}.yml").read_text()) or {}
            reserved = sorted(key for key in values if HARNESS_ONLY.match(key))
            if reserved:
                raise SystemExit(
                    f"bench/profiles/{name}.yml sets {reserved}: only bench/harness.yml may"
                )

    def check_tools(self) -> None:
        for tool in ("docker", "wrk", "git"):
            if not shutil.which(tool):
                raise SystemExit(f"{tool} not found: run `make system-deps engine` first")
        images = stackinfo.run(
            ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]
        ).split()
        missing = [
            f"djchat-local/{n}:bookworm"
            for n in ("python", "nginx", "redis")
            if f"djchat-local/{n}:bookworm" not in images
        ]
        if missing:
            raise SystemExit(f"base images {missing} missing: run `make base-images` first")

    def snapshot(self) -> None:
        """Deploy what HEAD holds: a run is reproducible from its commit, whatever else is being edited."""
        commit = stackinfo.run(["git", "-C", str(REPO), "rev-parse", "HEAD"]).strip()
        dirty = stackinfo.run(
            [
                "git",
                "-C",
                str(REPO),
                "status",
                "--porcelain",
                "--",
                "app",
                "roles",
                "playbooks",
            ]
        ).strip()
        if self.src.exists():
            shutil.rmtree(self.src)
        self.src.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(self.src)], input=archive, check=True)
        self.results["commit"] = commit
        if dirty:
            self.results["notes"].append(
                "The working tree had uncommitted changes in app/, roles/ or playbooks/; the run measured HEAD."
            )
        log(f"deploying HEAD {commit[:12]} from {self.src}")

    def bench_images(self) -> list[str]:
        out = stackinfo.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
        return [
            ref
            for ref in out.split()
            if ref.startswith(("djchat-bench/", "djchat-bench-seedstyle:"))
        ]

    def teardown(self, name: str) -> None:
        """Take the bench project down with its volumes, directory and images (only the bench's)."""
        if (self.project_dir / "compose.yml").exists():
            self.playbook("teardown.yml", None, name, ["-e", "djchat_teardown_purge=true"])
        else:
            # A run that died before its first compose file: containers may still carry the label.
            self.sh(
                [
                    "docker",
                    "compose",
                    "-p",
                    self.project,
                    "down",
                    "-v",
                    "--remove-orphans",
                ],
                name + "-compose",
                check=False,
            )
        for ref in self.bench_images():
            self.sh(["docker", "image", "rm", ref], f"{name}-rmi", check=False)

    # --- measurements ---------------------------------------------------------------------------

    def deploy(self, profile: str, first: bool) -> dict:
        deploy = {}
        converge = self.playbook("site.yml", profile, f"{profile}-converge")
        deploy["converge" if not first else "cold_converge"] = converge
        if "deploy" in self.args.skip:
            return deploy
        deploy["warm_converge"] = self.playbook("site.yml", profile, f"{profile}-warm")
        deploy["compose_up_running"] = self.compose_up(f"{profile}-compose-up")
        if first:
            self.compose("down", name=f"{profile}-compose-down")
            deploy["compose_up_stopped"] = self.compose_up(f"{profile}-compose-up-stopped")
            deploy["code_change_converge"] = self.code_change(profile)
        return deploy

    def code_change(self, profile: str) -> dict:
        """A release with one line of app code changed: the converge builds the new image, runs
        its steps and rolls it out; it ends when the new release serves (the role's smoke check)."""
        marked = self.src / "app" / "chat" / "__init__.py"
        marked.write_text(marked.read_text() + f"# bench: code change at {time.time():.0f}\n")
        return self.playbook("site.yml", profile, f"{profile}-code-change")

    def seed_data(self) -> None:
        """Rooms with messages, so the room list every profile serves is a full page (20 rooms)."""
        self.wsload(
            [
                "--room-prefix",
                "lobby",
                "fanout",
                "--rooms",
                "25",
                "--clients",
                "1",
                "--rates",
                "25",
                "--step-seconds",
                "2",
                "--drain-seconds",
                "5",
            ],
            "seed-data",
            timeout=120,
        )

    def http(self, profile: str) -> dict:
        results = {}
        for endpoint, path in (("room_list", "/"), ("healthz", "/healthz")):
            httpload.wrk(self.http_url + path, 16, 2)  # warm-up, not recorded
            rows = []
            for connections in self.load.http_levels:
                row = httpload.wrk(
                    self.http_url + path,
                    connections,
                    self.load.http_seconds,
                    project=self.project,
                    port=self.port,
                )
                log(
                    f"{profile} http {path} c={connections}: {row['rps']:.0f} req/s p50 {row['p50_ms']} ms "
                    f"p99 {row['p99_ms']} ms errors {row['socket_errors']} non-2xx {row['non_2xx']}"
                )
                rows.append(row)
            results[endpoint] = rows
        return results

    def wsload(
        self, argv: list[str], name: str, timeout: float, urls: list[str] | None = None
    ) -> dict:
        url = ",".join(urls or [self.ws_url])
        cmd = [sys.executable, str(BENCH / "wsload.py"), "--url", url, *argv]
        # wsload.py's clients are the shared chat client, tests/chatclient.py.
        path = os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "w") as err:
            completed = subprocess.run(
                cmd,
                stdout=subprocess.PIPE,
                stderr=err,
                env={**os.environ, "PYTHONPATH": path},
                text=True,
                timeout=timeout,
                check=False,
            )
        if completed.returncode != 0:
            raise SystemExit(f"wsload {name} failed; see {self.logs}/{name}.log")
        return json.loads(completed.stdout.strip().splitlines()[-1])

    def fanout(
        self,
        profile: str,
        round_index: int = 0,
        urls: list[str] | None = None,
        measure: list[str] | None = None,
    ) -> dict:
        """The fan-out load on the bench project, or on other URLs (bench/cluster.py: a cluster's
        nodes) with other CPU accounting (measure: wsload.py's --nodes)."""
        load = self.load
        bound = 60 + len(load.fan_rates) * (load.fan_step_seconds + load.fan_drain_seconds + 5)
        result = self.wsload(
            [
                "--room-prefix",
                f"fan-{profile}-{self.stamp}-{round_index}",
                "fanout",
                "--rooms",
                str(load.fan_rooms),
                "--clients",
                str(load.fan_clients),
                "--rates",
                ",".join(f"{r:g}" for r in load.fan_rates),
                "--step-seconds",
                str(load.fan_step_seconds),
                "--drain-seconds",
                str(load.fan_drain_seconds),
                *(measure or ["--project", self.project, "--port", str(self.port)]),
            ],
            f"{profile}-fanout-{round_index + 1}",
            timeout=bound,
            urls=urls,
        )
        for step in result["steps"]:
            log(
                f"{profile} fan-out send {step['offered_send_rate']:g}/s: delivered {step['delivered_rate']:.0f}/s "
                f"p50 {step['p50_ms']} ms p99 {step['p99_ms']} ms lost {step['lost']}"
            )
        return result

    def capacity(self, profile: str) -> dict:
        load = self.load
        argv = [
            "--room-prefix",
            f"idle-{profile}-{self.stamp}",
            "capacity",
            "--target",
            str(load.cap_target),
            "--ramp-seconds",
            str(load.cap_ramp_seconds),
            "--hold-seconds",
            str(load.cap_hold_seconds),
            "--project",
            self.project,
            "--port",
            str(self.port),
        ]
        if not self.args.no_raise_proxy_nofile:
            argv.append("--raise-proxy-nofile")
        result = self.wsload(
            argv,
            f"{profile}-capacity",
            timeout=load.cap_ramp_seconds + load.cap_hold_seconds + 180,
        )
        log(
            f"{profile} capacity: held {result['held']} of {result['target']} (ramp {result['ramp_seconds']} s, "
            f"{result['failures']}), {result['memory_per_connection_bytes']} B/connection"
        )
        return result

    def floor(self, round_index: int) -> dict:
        """The fan-out load on the floor relay (bench/floor.py): plain websockets in one process,
        on this machine's same cores, measured by its own CPU time."""
        log_path = self.logs / f"floor-relay-{round_index + 1}.log"
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as out:
            process = subprocess.Popen(
                [sys.executable, str(BENCH / "floor.py"), "--port", str(FLOOR_PORT)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 10
            while "floor relay on" not in log_path.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the floor relay did not start; see {log_path}")
                time.sleep(0.1)
            return self.fanout(
                "relay",
                round_index,
                urls=[f"ws://127.0.0.1:{FLOOR_PORT}"],
                measure=["--pid", str(process.pid)],
            )
        finally:
            process.terminate()
            process.wait(timeout=10)

    def measure_round(self, profile: str, round_index: int) -> dict:
        measured: dict = {"started": time.strftime("%H:%M:%S")}
        if "http" not in self.args.skip:
            measured["http"] = self.http(profile)
        if "fanout" not in self.args.skip:
            measured["fanout"] = self.fanout(profile, round_index)
        return measured

    def ensure_port_answers(self, profile: str) -> None:
        """docker-proxy exits when it runs out of files; restart nginx to get the port back."""
        try:
            urllib.request.urlopen(self.http_url + "/healthz", timeout=5).read()
            return
        except OSError:
            pass
        self.results["notes"].append(
            f"{profile}: the published port stopped answering after the capacity test "
            "(docker-proxy out of files); nginx was restarted."
        )
        self.compose("restart", "nginx", name=f"{profile}-restart-nginx")

    def images(self) -> dict:
        """The role's app image next to the seed-style one, sizes and from-scratch build times."""
        images: dict = {}
        role_image = stackinfo.run(
            [
                "docker",
                "compose",
                "--project-directory",
                str(self.project_dir),
                "-f",
                str(self.project_dir / "compose.yml"),
                "images",
                "--format",
                "json",
            ]
        )
        app_ref = next(
            f"{row['Repository']}:{row['Tag']}"
            for row in json.loads(role_image)
            if row["Repository"] == self.harness["djchat_app_image_name"]
        )
        images["role_image"] = app_ref
        images["role_bytes"] = int(
            stackinfo.run(["docker", "image", "inspect", "-f", "{{.Size}}", app_ref])
        )

        context = WORK / "seedstyle-context"
        if context.exists():
            shutil.rmtree(context)
        context.mkdir(parents=True)
        shutil.copytree(self.src / "app", context / "app")
        lock = (self.src / "app" / "requirements.lock").read_text()
        wheelhouse = next(
            (
                d
                for d in sorted((REPO / ".cache" / "djchat-bench" / "wheelhouse").glob("py*"))
                if d.is_dir()
                and (d / "requirements.lock").exists()
                and (d / "requirements.lock").read_text() == lock
            ),
            None,
        )
        if wheelhouse is None:
            raise SystemExit(
                "no wheelhouse for this lock file: the first converge should have made it"
            )
        shutil.copytree(wheelhouse, context / "wheels")
        shutil.copy(BENCH / "seedstyle" / "Dockerfile", context / "Dockerfile")
        nocache = ["--no-cache"] if self.load.nocache_builds else []
        _, seconds = self.sh(
            ["docker", "build", *nocache, "-t", SEEDSTYLE_TAG, str(context)],
            "image-seedstyle",
            timeout=1200,
        )
        images["seedstyle_build_seconds"] = round(seconds, 1)
        images["seedstyle_bytes"] = int(
            stackinfo.run(["docker", "image", "inspect", "-f", "{{.Size}}", SEEDSTYLE_TAG])
        )
        images["nocache"] = bool(nocache)
        if nocache:
            ref = f"{self.harness['djchat_app_image_name']}:{NOCACHE_TAG}"
            _, seconds = self.sh(
                [
                    "docker",
                    "build",
                    "--no-cache",
                    "-t",
                    ref,
                    str(self.project_dir / "build"),
                ],
                "image-role-nocache",
                timeout=1200,
            )
            images["role_build_seconds"] = round(seconds, 1)
            self.sh(["docker", "image", "rm", ref], "image-role-nocache-rm", check=False)
        log(
            f"images: role {images['role_bytes'] / 1e6:.0f} MB, seed-style {images['seedstyle_bytes'] / 1e6:.0f} MB"
        )
        return images

    # --- the run --------------------------------------------------------------------------------

    def run(self) -> None:
        self.check_profiles()
        self.check_tools()
        self.results["mode"] = "quick" if self.args.quick else "full"
        self.results["load"] = asdict(self.load)
        self.results["machine"] = stackinfo.machine()
        self.results["concurrent_work_at_start"] = stackinfo.heavy_processes()
        if self.results["concurrent_work_at_start"]:
            log(
                "other heavy work is running (numbers will be noisy): "
                + "; ".join(p[:80] for p in self.results["concurrent_work_at_start"])
            )
        self.snapshot()
        self.teardown("teardown-before")
        proxy_on = None
        order = [p for p in RUN_ORDER if p in self.args.profiles]
        try:
            for index, profile in enumerate(order):
                log(f"=== {profile} ===")
                entry: dict = {"deploy": self.deploy(profile, first=index == 0)}
                if index == 0:
                    self.seed_data()
                if proxy_on is None:
                    proxy_on = stackinfo.docker_proxy(self.port) is not None
                    self.results["machine"]["userland_proxy"] = proxy_on
                time.sleep(3)
                entry["rounds"] = [self.measure_round(profile, 0)]
                if "capacity" not in self.args.skip:
                    entry["capacity"] = self.capacity(profile)
                    self.ensure_port_answers(profile)
                entry["concurrent_work"] = stackinfo.heavy_processes()
                self.results["profiles"][profile] = entry
                pick_best_round(entry)
                self.save()
            if "fanout" not in self.args.skip and "relay" not in self.args.skip:
                log("=== relay (bench/floor.py) ===")
                relay = {"rounds": [{"fanout": self.floor(0)}]}
                self.results["profiles"]["relay"] = relay
                pick_best_round(relay)
                self.save()
            for round_index in range(1, self.load.rounds):
                if time.monotonic() - self.started > self.load.round_deadline_seconds:
                    self.results["notes"].append(
                        f"Round {round_index + 1} of {self.load.rounds} skipped: the run was "
                        f"already {time.monotonic() - self.started:.0f} s old."
                    )
                    break
                for profile in order[::-1] if round_index % 2 else order:
                    log(f"=== {profile}, round {round_index + 1} ===")
                    entry = self.results["profiles"][profile]
                    entry["deploy"][f"converge_round_{round_index + 1}"] = self.playbook(
                        "site.yml", profile, f"{profile}-converge-{round_index + 1}"
                    )
                    time.sleep(3)
                    entry["rounds"].append(self.measure_round(profile, round_index))
                    entry["concurrent_work"] += stackinfo.heavy_processes()
                    pick_best_round(entry)
                    self.save()
                if "relay" in self.results["profiles"]:
                    relay = self.results["profiles"]["relay"]
                    relay["rounds"].append({"fanout": self.floor(round_index)})
                    pick_best_round(relay)
                    self.save()
            if "images" not in self.args.skip and order:
                self.results["images"] = self.images()
            self.results["concurrent_work_at_end"] = stackinfo.heavy_processes()
        finally:
            self.save()
            if not self.args.keep:
                self.teardown("teardown-after")
        self.save()
        report.write(self.out, self.results, report.load_before(self.out))
        log(f"done in {time.monotonic() - self.started:.0f} s: {self.out / 'results.md'}")


def pick_best_round(entry: dict) -> None:
    """The best of the rounds: per HTTP endpoint and level the run with the most requests/s,
    and the fan-out run that sustained the most deliveries (within the p99 aim first)."""
    rounds = entry["rounds"]
    with_http = [r["http"] for r in rounds if "http" in r]
    if with_http:
        entry["http"] = {
            endpoint: [
                max((h[endpoint][i] for h in with_http), key=lambda row: row["rps"])
                for i in range(len(with_http[0][endpoint]))
            ]
            for endpoint in with_http[0]
        }
    with_fanout = [r["fanout"] for r in rounds if "fanout" in r]
    if with_fanout:
        entry["fanout"] = max(
            with_fanout,
            key=lambda f: (
                f.get("best_delivered_rate_within_p99_limit", 0),
                max((s["delivered_rate"] for s in f["steps"]), default=0),
            ),
        )
    entry["rounds_measured"] = len(rounds)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="djchat benchmarks (bench/README.md)")
    parser.add_argument(
        "--quick", action="store_true", help="small loads for development (< 5 min)"
    )
    parser.add_argument(
        "--profiles",
        type=lambda s: s.split(","),
        default=PROFILES,
        help="comma list of profiles to run (default: all)",
    )
    parser.add_argument(
        "--skip",
        type=lambda s: s.split(","),
        default=[],
        help="comma list of deploy (warm converge and compose floors), http, fanout, "
        "relay (the fan-out on bench/floor.py, the floor), capacity, images to leave out (--quick: deploy)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the last profile deployed")
    parser.add_argument(
        "--results",
        help="output directory (default bench/results, or bench/results/quick)",
    )
    parser.add_argument(
        "--no-raise-proxy-nofile",
        action="store_true",
        help="leave the docker-proxy's open-file limit alone (capacity then stops near 3,300)",
    )
    parser.add_argument("--rounds", type=int, help="HTTP and fan-out rounds per profile")
    args = parser.parse_args(argv)
    if args.quick and not args.skip:
        # Development: the converges still happen, but are not timed twice over.
        args.skip = ["deploy"]
    unknown = set(args.profiles) - set(PROFILES)
    if unknown:
        parser.error(f"unknown profiles {sorted(unknown)}")
    Bench(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
