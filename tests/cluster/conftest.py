"""Fixtures of the cluster suite. The nodes under test are described by environment variables
(molecule/cluster/verify.yml sets them):

  CLUSTER_URLS      the base URL of each node's nginx, in node order, comma-separated
                    (http://127.0.0.1:18301,http://127.0.0.1:18302,...)
  CLUSTER_PROJECT   the stack's name (djchat_compose_project)
  CLUSTER_MANAGER   the first manager's container on this machine (`docker exec` asks its swarm)
  CLUSTER_RECONVERGE_COMMAND  the converge command line (the scaling test converges again)
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from helpers import Stack, docker, unique, wait_until


@pytest.fixture(scope="session")
def nodes() -> list[Stack]:
    project = os.environ.get("CLUSTER_PROJECT", "djchat")
    urls = [url for url in os.environ.get("CLUSTER_URLS", "").split(",") if url]
    assert len(urls) >= 2, (
        f"CLUSTER_URLS names {len(urls)} node(s); the cluster suite needs two or more"
    )
    stacks = [
        Stack(
            base_url=url,
            http_url=url,
            project=project,
            project_dir=Path("/srv") / project,
            disruptive=True,
            reconverge_command=tuple(shlex.split(os.environ.get("CLUSTER_RECONVERGE_COMMAND", ""))),
        )
        for url in urls
    ]
    # The home page (/readyz answers a node's own host only: these requests come from this machine).
    for stack in stacks:
        wait_until(
            lambda stack=stack: stack.get("/", timeout=5).status_code == 200,
            timeout=60,
            interval=1.0,
            what=f"{stack.base_url} to render its home page",
        )
    return stacks


@pytest.fixture
def room() -> str:
    return unique("cluster")


class Swarm:
    """The swarm, asked through its first manager's engine (`docker exec <node> docker ...`)."""

    def __init__(self, manager: str, project: str):
        self.manager, self.project = manager, project

    def docker(self, *args: str) -> str:
        return docker("exec", self.manager, "docker", *args).stdout

    def image(self, service: str) -> str:
        """The image the service's definition names (its tasks roll to it)."""
        spec = self.docker(
            "service",
            "inspect",
            f"{self.project}_{service}",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        )
        return spec.strip().split("@", 1)[0]

    def running(self, service: str) -> list[str]:
        """The nodes the service's running tasks are on."""
        tasks = [
            json.loads(line)
            for line in self.docker(
                "service",
                "ps",
                f"{self.project}_{service}",
                "--format",
                "{{json .}}",
                "--filter",
                "desired-state=running",
            ).splitlines()
            if line.strip()
        ]
        return sorted(task["Node"] for task in tasks if task["CurrentState"].startswith("Running"))


@pytest.fixture(scope="session")
def swarm() -> Swarm:
    return Swarm(
        os.environ.get("CLUSTER_MANAGER", "djchat-cluster-1"),
        os.environ.get("CLUSTER_PROJECT", "djchat"),
    )
