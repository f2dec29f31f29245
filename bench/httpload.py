"""HTTP load through nginx with wrk (Debian's package): requests/s and latency percentiles."""

from __future__ import annotations

import re
import subprocess

import stackinfo

_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def parse_wrk(output: str) -> dict:
    """The numbers of `wrk --latency` output."""
    result: dict = {}
    match = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    result["rps"] = float(match.group(1)) if match else 0.0
    match = re.search(r"(\d+) requests in ([0-9.]+\w+)", output)
    result["requests"] = int(match.group(1)) if match else 0
    for pct in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.MULTILINE)
        result[f"p{pct}_ms"] = round(_ms(match.group(1)), 2) if match else None
    match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["socket_errors"] = sum(int(x) for x in match.groups()) if match else 0
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non_2xx"] = int(match.group(1)) if match else 0
    return result


def wrk(
    url: str,
    connections: int,
    seconds: float,
    threads: int = 2,
    project: str | None = None,
    port: int = 18090,
) -> dict:
    """One wrk run. Browsers ask for gzip, so the load does too (nginx compresses what is worth it)."""
    argv = [
        "wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds:g}s",
        "--latency", "--timeout", "10s", "-H", "Accept-Encoding: gzip", url,
    ]  # fmt: skip
    before = stackinfo.host_cpu_times()
    meter = stackinfo.CpuMeter(project, port)
    meter.start()
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    result = parse_wrk(completed.stdout)
    result["host_cpu_busy"] = stackinfo.host_cpu_busy(before)
    result.update(meter.stop())
    if result.get("stack_cpu_seconds") and result["requests"]:
        # CPU spent per request: the figure least moved by other work on the cores.
        per = 1000 / result["requests"]
        result["stack_cpu_ms_per_request"] = round(
            per * sum(result["stack_cpu_seconds"].values()), 3
        )
        result["engine_cpu_ms_per_request"] = round(
            per * sum(result["engine_cpu_seconds"].values()), 3
        )
    result["connections"] = connections
    result["seconds"] = seconds
    return result
