"""What the benchmarks read from this machine: container memory, the docker-proxy of a published
port, host CPU time, and the machine description the results are committed with."""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shutil
import subprocess
from pathlib import Path

_UNITS = {
    "b": 1,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
}


def run(argv: list[str], timeout: float = 60) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout).stdout


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]+)\s*", text)
    if not match:
        return 0
    return round(float(match.group(1)) * _UNITS.get(match.group(2).lower(), 1))


def project_containers(project: str) -> list[str]:
    out = run(["docker", "ps", "--filter", project_selector(project), "--format", "{{.Names}}"])
    return sorted(out.split())


def memory_by_container(project: str) -> dict[str, int]:
    """Memory in use per running container of the project, as `docker stats` counts it
    (cgroup usage without the page cache)."""
    names = project_containers(project)
    if not names:
        return {}
    out = run(
        ["docker", "stats", "--no-stream", "--format", "{{json .}}", *names],
        timeout=120,
    )
    usage = {}
    for line in out.splitlines():
        row = json.loads(line)
        usage[row["Name"]] = parse_size(row["MemUsage"].split("/")[0])
    return usage


def _cgroup_cpu_seconds(container_id: str) -> float | None:
    """CPU time a container has used, from its cgroup (v1 cpuacct or v2 cpu.stat)."""
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage")
    if v1.exists():
        return int(v1.read_text()) / 1e9
    for v2 in (
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat"),
        Path(f"/sys/fs/cgroup/docker/{container_id}/cpu.stat"),
    ):
        if v2.exists():
            for line in v2.read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
    return None


def project_selector(project: str) -> str:
    """The `docker ps --filter` of a compose project's containers."""
    return f"label=com.docker.compose.project={project}"


def cpu_by_container(selector: str) -> dict[str, float]:
    """CPU seconds used so far by each running container `docker ps --filter <selector>` lists
    (project_selector(project), or name=^djchat-cluster- for the cluster scenario's nodes)."""
    out = run(
        ["docker", "ps", "--no-trunc", "--filter", selector, "--format", "{{.ID}} {{.Names}}"]
    )
    usage = {}
    for line in out.splitlines():
        container_id, name = line.split()
        seconds = _cgroup_cpu_seconds(container_id)
        if seconds is not None:
            usage[name] = seconds
    return usage


def service_name(container: str) -> str:
    """djchat-bench-asgi1-1 -> asgi1"""
    return container.rsplit("-", 2)[-2]


def cpu_delta(
    before: dict[str, float], after: dict[str, float], key=service_name
) -> dict[str, float]:
    """CPU seconds per service (or per container, with key=str) between two cpu_by_container()
    readings."""
    return {key(name): round(after[name] - before[name], 3) for name in after if name in before}


class CpuMeter:
    """CPU the stack's containers and the engine's helpers spend between start() and stop(), or
    one process's (pid: the floor relay, bench/floor.py).

    With nodes (a name prefix: the cluster scenario's Docker-in-Docker nodes), the CPU of those
    containers, per node: every process of the stack on a node, the node's own engine among them.
    The host engine's helpers are not counted then (the nodes' engines run processes of the same
    names, which /proc cannot tell from the host's)."""

    def __init__(
        self, project: str | None, port: int, nodes: str | None = None, pid: int | None = None
    ):
        self.project, self.port = project, port
        self.nodes, self.pid = nodes, pid
        self.selector = f"name=^{nodes}" if nodes else (project and project_selector(project))

    def start(self) -> None:
        if self.pid:
            self.process = _process_cpu_seconds(self.pid) or 0.0
            return
        if self.selector:
            self.containers = cpu_by_container(self.selector)
        if self.project and not self.nodes:
            self.engine = engine_cpu(self.project, self.port)

    def stop(self) -> dict:
        if self.pid:  # one process: the floor relay (bench/floor.py)
            spent = (_process_cpu_seconds(self.pid) or 0.0) - self.process
            return {"stack_cpu_seconds": {"relay": round(spent, 3)}}
        if not self.selector:
            return {}
        after = cpu_by_container(self.selector)
        if self.nodes:
            return {"stack_cpu_seconds": cpu_delta(self.containers, after, key=str)}
        engine = engine_cpu(self.project, self.port)
        return {
            "stack_cpu_seconds": cpu_delta(self.containers, after),
            "engine_cpu_seconds": {
                k: round(engine[k] - self.engine.get(k, 0.0), 3) for k in engine
            },
        }


def _process_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_cpu(project: str, port: int) -> dict[str, float]:
    """CPU seconds used so far by the engine's processes outside the containers' cgroups:
    dockerd and containerd (shared with every other project on the machine), the shims of this
    project's containers (they copy the containers' stdout, i.e. the access logs) and the
    docker-proxy of the bench port."""
    out = run(["docker", "ps", "--no-trunc", "-q", "--filter", project_selector(project)])
    ids = set(out.split())
    usage: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _proc_cmdline(int(entry.name))
        if not argv or not argv[0]:
            continue
        name = os.path.basename(argv[0])
        if name == "containerd-shim-runc-v2":
            if "-id" not in argv or argv[argv.index("-id") + 1] not in ids:
                continue
            key = "shims"
        elif name == "docker-proxy":
            if "-host-port" not in argv or argv[argv.index("-host-port") + 1] != str(port):
                continue
            key = "docker-proxy"
        elif name in ("dockerd", "containerd"):
            key = name
        else:
            continue
        seconds = _process_cpu_seconds(int(entry.name))
        if seconds is not None:
            usage[key] = usage.get(key, 0.0) + seconds
    return usage


def _proc_cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def docker_proxy(port: int) -> dict | None:
    """The userland proxy process holding a published port, or None (userland-proxy off)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _proc_cmdline(int(entry.name))
        if not argv or not argv[0].endswith("docker-proxy"):
            continue
        if "-host-port" in argv and argv[argv.index("-host-port") + 1] == str(port):
            pid = int(entry.name)
            try:
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
            except OSError:
                fds, soft, hard = None, None, None
            return {
                "pid": pid,
                "rss_bytes": rss_bytes(pid),
                "open_files": fds,
                "file_limit": [soft, hard],
            }
    return None


def raise_proxy_file_limit(pid: int, wanted: int) -> dict:
    """Try to raise one docker-proxy's open-file limit to `wanted`.

    dockerd started from a shell (no systemd here) passes its own limit on to the proxy, and the
    proxy holds up to six files per proxied connection (the two sockets, and a pipe per direction
    for Go's splice), so a limit of 20000 stops it near 3,300 WebSockets whatever the stack does.
    Raising a hard limit needs CAP_SYS_RESOURCE, which a sandboxed root may lack: then the soft
    limit goes up to the hard one and the result says so.
    """
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    outcome = {"before": [soft, hard], "wanted": wanted}
    try:
        if soft < wanted:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except PermissionError:
        outcome["error"] = "not permitted (no CAP_SYS_RESOURCE): soft limit raised to the hard one"
        if soft < hard:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
    outcome["after"] = list(resource.prlimit(pid, resource.RLIMIT_NOFILE))
    return outcome


def host_cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def host_cpu_busy(before: tuple[int, int]) -> float:
    """Share of both cores busy since `before` (0..1), every process on the host included."""
    busy, total = host_cpu_times()
    return round((busy - before[0]) / max(1, total - before[1]), 3)


def heavy_processes() -> list[str]:
    """Other work that competes for the cores (Molecule, pytest, image builds)."""
    found = []
    for pattern in ("molecule", "pytest", "buildkit", "ansible-playbook"):
        try:
            out = run(["pgrep", "-fa", pattern])
        except subprocess.CalledProcessError:
            continue
        for line in out.splitlines():
            if "bench/run.py" not in line and "pgrep" not in line:
                found.append(line[:160])
    return found


def machine() -> dict:
    def first(cmd: list[str]) -> str:
        try:
            return run(cmd).strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            return "?"

    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    meminfo = Path("/proc/meminfo").read_text()
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    os_release = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    info = json.loads(run(["docker", "info", "--format", "{{json .}}"]))
    return {
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "os": os_release.get("PRETTY_NAME", "?").strip('"'),
        "kernel": platform.release(),
        "docker_server": info.get("ServerVersion"),
        "docker_storage": info.get("Driver"),
        "cgroup": info.get("CgroupVersion"),
        "compose": first(["docker", "compose", "version", "--short"]),
        "wrk": first(["sh", "-c", "wrk -v 2>&1 | head -1"]) if shutil.which("wrk") else None,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
