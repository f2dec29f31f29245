"""The CPUs this process may use, and the gunicorn worker count gunicorn.conf.py derives from them.

A container started with a CPU limit (Compose's `cpus:`, a CFS quota) still sees every CPU of the
host in os.cpu_count() and os.sched_getaffinity(); only its cgroup says how much of them it may
use: cgroup v2's cpu.max ("200000 100000" = 2 CPUs, "max 100000" = no limit) or, on cgroup v1,
cpu.cfs_quota_us (-1 = no limit) over cpu.cfs_period_us. Docker shows a container its own cgroup
at /sys/fs/cgroup. The deploy role's tests ask this module, inside the running wsgi container, how
many workers the default gives (tests/e2e/test_settings.py), so there is one rule, here.

No imports from Django: gunicorn.conf.py uses it before Django is loaded.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The automatic count never goes past this, however many cores a host without a CPU limit has.
MAX_AUTO_WORKERS = 12


def usable_cpus(cgroup_root: Path = CGROUP_ROOT) -> float:
    """CPUs this process may run on, lowered to its cgroup's quota when it has one."""
    quota = cgroup_cpu_quota(cgroup_root)
    cpus = float(affinity_cpus())
    return cpus if quota is None else min(cpus, quota)


def affinity_cpus() -> int:
    """CPUs the scheduler lets this process run on (a cpuset or taskset narrows them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The CPUs the cgroup's CFS quota allows (1.5 = one and a half), or None without a quota."""
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        pass  # not cgroup v2: try v1
    else:
        return None if quota == "max" else _ratio(quota, period)
    for controller in ("cpu", "cpu,cpuacct"):
        try:
            quota = (cgroup_root / controller / "cpu.cfs_quota_us").read_text()
            period = (cgroup_root / controller / "cpu.cfs_period_us").read_text()
        except OSError:
            continue
        return _ratio(quota, period)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:  # v1 writes -1 for "no limit"
        return None
    return quota_us / period_us


def auto_workers(cpus: float) -> int:
    """GUNICORN_WORKERS=0: a worker per usable CPU (a part of one counts as one) plus one, at
    most MAX_AUTO_WORKERS."""
    return min(math.ceil(cpus) + 1, MAX_AUTO_WORKERS)
