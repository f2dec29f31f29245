"""The engine install on a Debian 12 host that cannot reach Docker's apt repository: a container
of the local python base image (Debian 12 with python3) with no network, as the target of
playbooks/engine.yml. The default source stops before any change, naming the opt-in; the host's
packages and package sources are exactly as they were. The opt-in trixie source is written by
ansible.builtin.deb822_repository, as apt reads it (python3-debian, which that module needs, comes
from Debian 12 through this machine's network: the container has none)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from playbook import REPO_ROOT, run_playbook

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MIRROR = "http://deb.debian.org/debian"  # djchat_debian_mirror (the role's default)
SECURITY_MIRROR = "http://security.debian.org/debian-security"  # djchat_debian_security_mirror

IMAGE = "djchat-local/python:bookworm"  # playbooks/base_images.yml (make base-images)
# What a package change or a new package source would alter.
SNAPSHOT = (
    "dpkg-query -W -f '${Package} ${Version} ${Status}\\n';"
    " ls -la --time-style=+%s /etc/apt/sources.list.d /etc/apt/preferences.d /etc/apt/keyrings"
    " 2>&1; cat /etc/apt/sources.list /etc/os-release"
)


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=120
    ).stdout


@pytest.fixture
def debian12_host(tmp_path):
    name = f"djchat-engine-target-{uuid.uuid4().hex[:8]}"
    docker("run", "--detach", "--name", name, "--network", "none", IMAGE, "sleep", "infinity")
    inventory = tmp_path / "inventory.json"
    inventory.write_text(
        json.dumps(
            {
                "djchat": {
                    "hosts": {
                        name: {
                            "ansible_connection": "community.docker.docker",
                            "ansible_python_interpreter": "/usr/bin/python3",
                            # root in the container already; the image has no sudo
                            "ansible_become": False,
                        }
                    }
                }
            }
        )
    )
    try:
        yield name, inventory
    finally:
        docker("rm", "--force", name)


def test_default_source_on_debian_12_without_dockers_repository_changes_nothing(debian12_host):
    name, inventory = debian12_host
    assert "VERSION_CODENAME=bookworm" in docker("exec", name, "cat", "/etc/os-release")
    before = docker("exec", name, "sh", "-c", SNAPSHOT)

    run = run_playbook(REPO_ROOT / "playbooks/engine.yml", {}, str(inventory), name)

    assert run.returncode != 0, run.output
    message = " ".join(run.failure_messages)
    assert "Docker's apt repository https://download.docker.com/linux/debian did not answer" in (
        message
    ), run.output
    assert "no package or package source was changed" in message
    assert 'djchat_docker_source to "trixie"' in message
    assert "Stop before any package change" in run.tasks_run[-1]
    assert docker("exec", name, "sh", "-c", SNAPSHOT) == before


def test_debian_12_refuses_its_own_docker_packages(debian12_host):
    name, inventory = debian12_host
    before = docker("exec", name, "sh", "-c", SNAPSHOT)

    run = run_playbook(
        REPO_ROOT / "playbooks/engine.yml",
        {"djchat_docker_source": "distribution"},
        str(inventory),
        name,
    )

    assert run.returncode != 0, run.output
    assert "Debian 12 ships Docker 20.10 without Compose v2" in " ".join(run.failure_messages)
    assert docker("exec", name, "sh", "-c", SNAPSHOT) == before


@pytest.fixture(scope="module")
def python3_apt_debs(tmp_path_factory) -> list[Path]:
    """Debian 12's python3-debian and python3-apt with the packages they depend on, downloaded on
    this machine by apt with a configuration of its own (bookworm's lists in a temporary
    directory; this machine's sources and lists untouched)."""
    root = tmp_path_factory.mktemp("apt-bookworm")
    for directory in ("lists/partial", "cache/archives/partial", "parts", "debs"):
        (root / directory).mkdir(parents=True)
    (root / "sources.list").write_text(f"deb [signed-by={KEYRING}] {MIRROR} bookworm main\n")
    options = [
        f"-oDir::Etc::SourceList={root}/sources.list",
        f"-oDir::Etc::SourceParts={root}/parts",
        f"-oDir::State::Lists={root}/lists",
        f"-oDir::Cache={root}/cache",
    ]
    # python3-apt: what ansible.builtin.apt needs (it would install it itself, from the network).
    packages = ["python3-debian", "python3-chardet", "python3-pkg-resources"]
    packages += ["python3-apt", "python-apt-common", "distro-info-data"]
    for argv in (["update"], ["download", *(f"{package}/bookworm" for package in packages)]):
        subprocess.run(
            ["apt-get", "-qq", *options, *argv],
            cwd=root / "debs",
            check=True,
            capture_output=True,
            timeout=300,
        )
    return sorted((root / "debs").glob("*.deb"))


def test_the_trixie_source_is_written_by_deb822_repository(debian12_host, python3_apt_debs):
    name, inventory = debian12_host
    for deb in python3_apt_debs:
        docker("cp", str(deb), f"{name}:/tmp/{deb.name}")
    docker("exec", name, "sh", "-c", "dpkg -i /tmp/*.deb")

    run = run_playbook(
        REPO_ROOT / "playbooks/engine.yml", {"djchat_docker_source": "trixie"}, str(inventory), name
    )

    # Without a network the packages cannot come; the sources are written before that.
    assert run.returncode != 0, run.output
    added = (
        "djchat.stack.docker_engine : Add Debian 13 (trixie) and its security updates as package"
        " sources"
    )
    assert added in run.tasks_run, (run.tasks_run, run.failure_messages)
    sources = docker("exec", name, "ls", "/etc/apt/sources.list.d").split()
    assert {"trixie.sources", "trixie-security.sources"} <= set(sources), sources
    for source in ("trixie", "trixie-security"):
        text = docker("exec", name, "cat", f"/etc/apt/sources.list.d/{source}.sources")
        assert f"Signed-By: {KEYRING}" in text, text
        assert "Components: main" in text, text
    targets = docker(
        "exec", name, "apt-get", "indextargets", "--no-release-info", "--format=$(SITE) $(RELEASE)"
    )
    assert {
        f"{MIRROR} trixie",
        f"{MIRROR} trixie-updates",
        f"{SECURITY_MIRROR} trixie-security",
    } <= set(targets.splitlines()), targets
    pins = docker("exec", name, "cat", "/etc/apt/preferences.d/trixie-low")
    assert "Pin: release n=trixie-security\nPin-Priority: 100" in pins, pins
