"""The operator's read-only views: playbooks/status.yml (state, health, restarts, CPU and memory
of every container) and playbooks/logs.yml (the last lines of each service's log, or of one),
run as the scenario converges (Stack.playbook). Neither changes anything."""

from __future__ import annotations

import re

import pytest

from helpers import Stack, unique, wait_until


@pytest.fixture
def playbooks(stack: Stack) -> Stack:
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    return stack


def test_status_shows_every_running_container_with_its_use(playbooks: Stack):
    status = playbooks.playbook("status.yml")

    assert status.changed == 0
    running = [c for c in playbooks.containers() if c.running]
    assert running
    for container in running:
        row = re.search(
            rf"^\s*{re.escape(container.service)}\s+running\s+(\S+)\s+(\d+)\s+([\d.]+%)\s+(\S+iB/\S+)\s",
            status.output,
            re.MULTILINE,
        )
        assert row, f"no status row for {container.name}:\n{status.output[-3000:]}"
        assert row.group(1) == (container.health or "-")


def test_logs_show_a_request_just_made_in_nginx_and_every_service(playbooks: Stack):
    path = f"/{unique('logs-probe')}"
    assert playbooks.get(path).status_code == 404

    runs = []

    def nginx_logged_it() -> bool:
        runs.append(playbooks.playbook("logs.yml", "-e", "djchat_logs_service=nginx"))
        return path in runs[-1].output  # (YAML output may fold the request line)

    # nginx writes its access log every 5 s (djchat_nginx_access_log: buffered).
    wait_until(nginx_logged_it, timeout=60, interval=2, what=f"logs.yml to show GET {path}")
    every = playbooks.playbook("logs.yml", "-e", "djchat_logs_lines=20")

    assert {run.changed for run in runs} == {0}
    assert every.changed == 0
    assert "\\e[" not in every.output  # no terminal control codes (YAML shows ESC as \e)
    for container in (c for c in playbooks.containers() if c.running):
        # docker compose logs names each line's container without the project's prefix.
        prefix = container.name.removeprefix(f"{playbooks.project}-")
        assert re.search(rf"^\s*- [\"']?{re.escape(prefix)}\s+\|", every.output, re.MULTILINE), (
            f"no log lines of {container.name}"
        )


def test_logs_refuse_a_negative_line_count_saying_so(playbooks: Stack):
    refused = playbooks.playbook("logs.yml", "-e", "djchat_logs_lines=-5", check=False)

    assert refused.returncode != 0
    assert "djchat_logs_lines must be a number of lines, 0 for all, got -5" in refused.output
