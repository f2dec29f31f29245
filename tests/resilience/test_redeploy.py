"""A redeploy at noon: change the app code, rerun site.yml under constant HTTP load and live
WebSocket clients, then roll back with playbooks/rollback.yml. Figures: HTTP requests sent and
failed during each run, messages sent/received/lost, reconnects, and the image tags.

The changed code is a copy of app/ with one extra comment line in a Python module (a new
content-derived image tag, nothing else), given to the role as djchat_app_source_dir.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from helpers import REPO_ROOT, Stack
from traffic import run_under_load


def app_tag(stack: Stack) -> str:
    return stack.service("wsgi").attrs["Config"]["Image"].rsplit(":", 1)[1]


@pytest.mark.disruptive
def test_code_change_redeploy_and_rollback_fail_no_request_and_lose_no_message(stack: Stack):
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    before = app_tag(stack)
    workdir = Path(tempfile.mkdtemp(prefix="djchat-redeploy-"))
    try:
        source = workdir / "app"
        shutil.copytree(
            REPO_ROOT / "app",
            source,
            ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.sqlite3*", "staticfiles"),
        )
        with (source / "djchat" / "health.py").open("a") as module:
            module.write(f"\n# redeploy test {time.time_ns()}\n")
        http, chat, seconds, _ = run_under_load(
            stack, "site.yml", f"--extra-vars=djchat_app_source_dir={source}"
        )
        after = app_tag(stack)
        print(f"\nredeploy {before} -> {after} in {seconds:.0f} s: http {http}; chat {chat}")
        assert after != before, "the code change did not produce a new image tag"

        back_http, back_chat, back_seconds, _ = run_under_load(stack, "rollback.yml")
        print(
            f"rollback {after} -> {app_tag(stack)} in {back_seconds:.0f} s: "
            f"http {back_http}; chat {back_chat}"
        )
        assert app_tag(stack) == before, "rollback.yml did not return to the previous image"
        assert http["requests_failed"] == 0, f"requests failed during the redeploy: {http}"
        assert back_http["requests_failed"] == 0, (
            f"requests failed during the rollback: {back_http}"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
