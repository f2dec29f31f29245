"""The automatic gunicorn worker count follows the CPUs the container may use (its cgroup's CPU
quota), not the host's; cgroup files are faked under a temporary root."""

import os
from pathlib import Path

import pytest

from djchat import cpus


@pytest.fixture
def host_cpus(monkeypatch) -> int:
    """A host of 8 CPUs, whatever this machine has."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)))
    return 8


def cgroup_v2(root: Path, cpu_max: str) -> Path:
    (root / "cpu.max").write_text(f"{cpu_max}\n")
    return root


def cgroup_v1(root: Path, quota: int, period: int = 100000, controller: str = "cpu") -> Path:
    (root / controller).mkdir()
    (root / controller / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / controller / "cpu.cfs_period_us").write_text(f"{period}\n")
    return root


def test_a_quota_of_one_cpu_on_a_bigger_host_gives_two_workers(tmp_path, host_cpus):
    root = cgroup_v2(tmp_path, "100000 100000")

    assert cpus.usable_cpus(root) == 1
    assert cpus.auto_workers(cpus.usable_cpus(root)) == 2


def test_a_cgroup_v1_quota_is_read_too(tmp_path, host_cpus):
    root = cgroup_v1(tmp_path, quota=200000)

    assert cpus.usable_cpus(root) == 2
    assert cpus.auto_workers(cpus.usable_cpus(root)) == 3


def test_a_cgroup_v1_quota_is_found_under_the_combined_controller_name(tmp_path, host_cpus):
    root = cgroup_v1(tmp_path, quota=150000, controller="cpu,cpuacct")

    assert cpus.usable_cpus(root) == 1.5


def test_part_of_a_cpu_counts_as_a_whole_one(tmp_path, host_cpus):
    assert cpus.auto_workers(cpus.usable_cpus(cgroup_v2(tmp_path, "50000 100000"))) == 2
    assert cpus.auto_workers(1.5) == 3


@pytest.mark.parametrize(
    "make_root",
    [
        lambda root: cgroup_v2(root, "max 100000"),
        lambda root: cgroup_v1(root, quota=-1),
        lambda root: root,  # no cgroup files at all
    ],
    ids=["v2-max", "v1-minus-one", "no-cgroup-files"],
)
def test_no_quota_gives_the_host_cpus_plus_one(tmp_path, host_cpus, make_root):
    root = make_root(tmp_path)

    assert cpus.usable_cpus(root) == host_cpus
    assert cpus.auto_workers(cpus.usable_cpus(root)) == host_cpus + 1


def test_a_quota_above_the_host_cpus_gives_the_host_cpus(tmp_path, host_cpus):
    assert cpus.usable_cpus(cgroup_v2(tmp_path, "1600000 100000")) == host_cpus


def test_the_automatic_count_is_at_most_twelve():
    assert cpus.auto_workers(11) == 12
    assert cpus.auto_workers(64) == 12


def test_an_unreadable_quota_counts_as_none(tmp_path, host_cpus):
    assert cpus.usable_cpus(cgroup_v2(tmp_path, "garbage")) == host_cpus
