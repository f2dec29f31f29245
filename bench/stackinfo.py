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
    return subprocess.run(
        argv, check=True, capture_output=True, text=True, timeout=timeout
    ).stdout


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]+)\s*", text)
    if not match:
        return 0
    return round(float(match.group(1)) * _UNITS.get(match.group(2).lower(), 1))


def project_containers(project: str) -> list[str]:
    out = run(
        [
            "docker",
            "ps",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--format",
            "{{.Names}}",
        ]
    )
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


def _proc_cmdline(pid: int) -> list[str]:
    try:
        return (
            Path(f"/proc/{pid}/cmdline")
            .read_bytes()
            .decode(errors="replace")
            .split("\0")
        )
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


def raise_proxy_file_limit(pid: int, wanted: int) -> int | None:
    """Raise one docker-proxy's open-file limit to `wanted` when it is lower.

    dockerd started from a shell (no systemd here) passes its own limit on to the proxy, and the
    proxy holds up to six files per proxied connection (the two sockets, and the two pipes Go's
    splice copies through, pooled and freed only by the garbage collector): with a limit of 20000
    it stops near 3,300 WebSockets. systemd's docker.service raises it; this does the same for the one process serving
    the bench port, and the results say so. Returns the new limit, or None when nothing changed.
    """
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return None
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    return wanted


def host_cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [
        int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ]
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
        "wrk": first(["sh", "-c", "wrk -v 2>&1 | head -1"])
        if shutil.which("wrk")
        else None,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
