"""The engine install on a Debian 12 host that cannot reach Docker's apt repository: a container
of the local python base image (Debian 12 with python3) with no network, as the target of
playbooks/engine.yml. The default source stops before any change, naming the opt-in; the host's
packages and package sources are exactly as they were."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from playbook import REPO_ROOT, run_playbook

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
