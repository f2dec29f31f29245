"""Releases on the cluster: a code change rolls out under traffic without a failed request or a
lost message, and a release whose steps fail never replaces the one that serves.

The changed code is a copy of app/ given to the role as djchat_app_source_dir: one comment line
more in a module (a new content-derived image tag, nothing else), or a release step that fails.
The next converge with the scenario's own source (test_scaling.py's) returns to its release.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from conftest import Swarm
from helpers import REPO_ROOT, Stack
from traffic import Conversation, HttpProbe, playbook


def app_copy(workdir: Path, module: str, line: str) -> Path:
    source = workdir / "app"
    shutil.copytree(
        REPO_ROOT / "app",
        source,
        ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.sqlite3*", "staticfiles"),
    )
    with (source / module).open("a") as file:
        file.write(f"\n{line}\n")
    return source


def test_code_change_rolls_out_with_no_failed_request_and_no_lost_message(
    nodes: list[Stack], swarm: Swarm, tmp_path: Path
):
    before = swarm.image("wsgi")
    source = app_copy(tmp_path, "djchat/health.py", f"# cluster rollout test {time.time_ns()}")
    with (
        HttpProbe(nodes[0], path="/", interval=0.1) as probe,
        Conversation(nodes[-1], size=2, interval=1.0, name="rollout") as talk,
    ):
        time.sleep(2)
        started = time.monotonic()
        playbook(nodes[0], "site.yml", f"--extra-vars=djchat_app_source_dir={source}")
        seconds = time.monotonic() - started
        time.sleep(3)
        probe.stop()
        figures = talk.finish()
    after = swarm.image("wsgi")
    http = probe.figures()
    print(
        f"\nrelease {before} -> {after} in {seconds:.0f} s: "
        f"GET / every 0.1 s {http}; chat {figures}"
    )
    assert after != before, "the code change did not produce a new image"
    assert swarm.image("asgi") == after
    talk.assert_nothing_lost(figures)
    assert http["requests_failed"] == 0, http


def test_a_release_whose_step_fails_stops_before_the_serving_services(
    nodes: list[Stack], swarm: Swarm, tmp_path: Path
):
    serving = swarm.image("wsgi")
    # A migration that fails: the image builds, its release step (manage.py release) does not.
    migrations = REPO_ROOT / "app" / "chat" / "migrations"
    latest = sorted(path.stem for path in migrations.glob("[0-9][0-9][0-9][0-9]_*.py"))[-1]
    source = app_copy(tmp_path, "djchat/health.py", f"# cluster failed release {time.time_ns()}")
    (source / "chat" / "migrations" / "9999_cluster_test_failure.py").write_text(
        "from django.db import migrations\n\n\n"
        "def fail(apps, schema_editor):\n"
        '    raise RuntimeError("cluster test: this release cannot start")\n\n\n'
        "class Migration(migrations.Migration):\n"
        f'    dependencies = [("chat", "{latest}")]\n'
        "    operations = [migrations.RunPython(fail)]\n"
    )
    with HttpProbe(nodes[0], path="/", interval=0.1) as probe:
        result = playbook(
            nodes[0],
            "site.yml",
            f"--extra-vars=djchat_app_source_dir={source}",
            expect_success=False,
        )
        probe.stop()
    http = probe.figures()
    said = result.stdout + result.stderr
    failure = said[said.find("The release step") :][:600]
    print(f"\nfailed release: GET / every 0.1 s {http}; the converge said: {failure}")
    assert "The release step" in said, said[-3000:]
    assert "this release cannot start" in said, said[-3000:]
    assert swarm.image("wsgi") == serving
    assert swarm.image("asgi") == serving
    assert http["requests_failed"] == 0, http
