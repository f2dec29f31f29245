"""playbooks/logs.yml, status.yml and admin.yml in swarm mode, run from the first manager: each
service's log from every node its tasks run on (`docker service logs`), so one play shows a
request made through any node; every task of the stack with its node and state; the first
administrator made by a one-off job, whose password logs in through any node."""

from __future__ import annotations

import re

from conftest import Swarm
from helpers import Stack, docker, logged_in_session, unique, wait_until


def test_logs_show_requests_made_through_every_node(nodes: list[Stack], swarm: Swarm):
    paths = {}
    for stack in nodes:
        paths[stack.base_url] = f"/{unique('logs-probe')}"
        assert stack.get(paths[stack.base_url]).status_code == 404
    runs = []

    def every_request_logged() -> bool:
        runs.append(nodes[0].playbook("logs.yml", "-e", "djchat_logs_service=nginx"))
        return all(path in runs[-1].output for path in paths.values())

    # Each node's nginx writes its access log every 5 s (djchat_nginx_access_log: buffered).
    wait_until(every_request_logged, timeout=90, interval=3, what="logs.yml to show every probe")

    assert {run.changed for run in runs} == {0}
    for node in swarm.running("nginx"):
        assert f"@{node}" in runs[-1].output, f"no nginx log lines from {node}"


def test_status_shows_every_task_on_its_node(nodes: list[Stack], swarm: Swarm):
    status = nodes[0].playbook("status.yml")

    assert status.changed == 0
    for service in ("wsgi", "asgi", "nginx", "redis"):
        for node in swarm.running(service):
            assert re.search(
                rf"{re.escape(swarm.project)}_{service}\.\S+\s+{re.escape(node)}\s+Running\s+Running",
                status.output,
            ), f"no running {service} task on {node} in:\n{status.output[-3000:]}"


def test_admin_playbook_creates_the_administrator_in_a_job(nodes: list[Stack], swarm: Swarm):
    username = unique("ops")[:30]

    first = nodes[0].playbook("admin.yml", "-e", f"djchat_admin_username={username}")
    second = nodes[0].playbook("admin.yml", "-e", f"djchat_admin_username={username}")
    password_file = f"/srv/{swarm.project}/secrets/admin_password"
    password = docker("exec", swarm.manager, "cat", password_file).stdout.strip()

    assert f"Administrator {username}: created" in first.output, first.output[-3000:]
    assert f"Administrator {username}: unchanged" in second.output, second.output[-3000:]
    assert password not in first.output + second.output  # never in the play's output
    mode = docker("exec", swarm.manager, "stat", "-c", "%a %u", password_file).stdout.split()
    assert mode == ["600", "0"]
    # The job and its password's secret lived for the job only.
    assert f"{swarm.project}_admin" not in swarm.docker("service", "ls", "--format", "{{.Name}}")
    assert "_admin_password_" not in swarm.docker("secret", "ls", "--format", "{{.Name}}")
    # The password logs the administrator in through another node.
    logged_in_session(nodes[-1], username, password)
