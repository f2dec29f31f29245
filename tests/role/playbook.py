"""Helpers of the role suite (and of tests/resilience/test_bad_variables.py): run a playbook
(here unless told) and read its JSON report; a free port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_DIR = REPO_ROOT / "app"
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A port nothing listens on at 127.0.0.1 now (for the stacks and renders of one test)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def local_inventory(path: Path) -> str:
    """An inventory file at `path` holding this machine as the one host of the group djchat, as
    root without become (for playbooks that run on `djchat`); its path, for run_playbook."""
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ansible_become": False,  # root already
    }
    path.write_text(json.dumps({"djchat": {"hosts": {"localhost": host}}}))
    return str(path)


@dataclass
class PlaybookRun:
    returncode: int
    tasks_run: list[str]
    failure_messages: list[str]
    failed_results: list[dict]  # each failed result (a loop's failed items): cmd, stderr, ...
    changed: int  # the host's changed count in the play recap
    output: str  # the end of stdout and stderr, for failure messages


def failures_of(task: dict, host: str) -> list[str]:
    """The messages of the failed results of one task (a loop's failed items included)."""
    result = task["hosts"].get(host, {})
    items = result.get("results") or [result]
    return [str(item.get("msg", "")) for item in items if item.get("failed")]


def failed_results_of(task: dict, host: str) -> list[dict]:
    result = task["hosts"].get(host, {})
    items = result.get("results") or [result]
    return [item for item in items if item.get("failed")]


def run_playbook(
    playbook: Path,
    variables: dict[str, object],
    inventory: str = "localhost,",
    host: str = "localhost",
    cwd: Path = REPO_ROOT,
    timeout: float = 240,
) -> PlaybookRun:
    """ansible-playbook against `host` of `inventory` (this machine, connection local, unless
    told) with `variables` as --extra-vars, from `cwd`, its report read from the JSON callback."""
    environment = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            f"--inventory={inventory}",
            str(playbook),
            f"--extra-vars={json.dumps(variables)}",
        ],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        report = {"plays": [], "stats": {}}
    tasks = [task for play in report["plays"] for task in play["tasks"]]
    return PlaybookRun(
        returncode=result.returncode,
        tasks_run=[task["task"]["name"] for task in tasks],
        failure_messages=[message for task in tasks for message in failures_of(task, host)],
        failed_results=[item for task in tasks for item in failed_results_of(task, host)],
        changed=report["stats"].get(host, {}).get("changed", 0),
        output=result.stdout[-4000:] + result.stderr[-2000:],
    )


RENDER = Path(__file__).resolve().parent / "render.yml"


def render(render_dir: Path, variables: dict[str, object]) -> PlaybookRun:
    """The role's validation and templates (render.yml) into `render_dir`, for a scratch project
    on free ports, with `variables` on top."""
    render_dir.mkdir()
    return run_playbook(
        RENDER,
        {
            "render_dir": str(render_dir),
            "djchat_compose_project": "djchat-role-test",
            "djchat_project_dir": str(render_dir / "project"),
            "djchat_http_port": free_port(),
            "djchat_https_port": free_port(),
            **variables,
        },
    )
