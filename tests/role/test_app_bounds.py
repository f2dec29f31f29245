"""The role and the app agree on every integer the app reads from the environment: what the role's
validation accepts, the role passes to the app unchanged, and the app starts with it; what the app
would refuse, the validation refuses first, naming the variable.

The ranges are those of vars/main/app_bounds.yml (generated from app/djchat/bounds.py). Four
playbook runs of render.yml, side by side: every variable at its lowest, at its highest, one below
and one above. The two accepted profiles' app.env and wsgi environment then load settings.py
(django.setup()) and gunicorn.conf.py (gunicorn --print-config) in fresh processes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from playbook import APP_DIR, REPO_ROOT, PlaybookRun, render

APP_BOUNDS = REPO_ROOT / "roles/djchat_stack/vars/main/app_bounds.yml"
BOUNDS: dict[str, dict] = yaml.safe_load(APP_BOUNDS.read_text())["_djchat_app_bounds"]

# A cross-field rule of tasks/validate.yml keeps a variable above a partner (gunicorn must keep
# an idle connection longer than nginx does): at the lowest, the partner is set to its own
# lowest, 1, and the variable to 2.
ABOVE_PARTNER = {
    "djchat_gunicorn_keepalive": "djchat_nginx_upstream_keepalive_timeout",
}

PROFILES = {
    "lowest": {
        **{variable: bound["minimum"] for variable, bound in BOUNDS.items()},
        **{partner: 1 for partner in ABOVE_PARTNER.values()},
        **{
            variable: max(BOUNDS[variable]["minimum"], 2)
            for variable in ABOVE_PARTNER
            if variable in BOUNDS
        },
    },
    "highest": {variable: bound["maximum"] for variable, bound in BOUNDS.items()},
    "below": {variable: bound["minimum"] - 1 for variable, bound in BOUNDS.items()},
    "above": {variable: bound["maximum"] + 1 for variable, bound in BOUNDS.items()},
}
ACCEPTED = ["lowest", "highest"]
REJECTED = ["below", "above"]

SETTINGS_PROBE = """
import json, django
from django.conf import settings as s
django.setup()
print(json.dumps({
    "DJANGO_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    **{name: getattr(s, name) for name in dir(s) if name.startswith(("CHAT_", "ACCOUNT_"))},
}))
"""
AUTO_WORKERS_PROBE = (
    "from djchat.cpus import auto_workers, usable_cpus; print(auto_workers(usable_cpus()))"
)


def run_profile(name: str, render_dir: Path) -> PlaybookRun:
    # With HTTPS the app reads DJANGO_HSTS_SECONDS too.
    return render(
        render_dir, {"djchat_tls_enabled": True, "djchat_tls_self_signed": True, **PROFILES[name]}
    )


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="djchat-role-test-") as directory:
        yield Path(directory)


@pytest.fixture(scope="module")
def runs(scratch: Path) -> dict[str, PlaybookRun]:
    with ThreadPoolExecutor(max_workers=len(PROFILES)) as pool:
        futures = {name: pool.submit(run_profile, name, scratch / name) for name in PROFILES}
    return {name: future.result() for name, future in futures.items()}


def rendered_environment(render_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """app.env as the app containers get it, and the wsgi service's own environment."""
    lines = (render_dir / "app.env").read_text().splitlines()
    app_env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    compose = yaml.safe_load((render_dir / "compose.yml").read_text())
    return app_env, {k: str(v) for k, v in compose["services"]["wsgi"]["environment"].items()}


def app_process(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The app's Python in app/ under exactly `environment` (nothing inherited but PATH)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=APP_DIR,
        env={"PATH": os.environ.get("PATH", ""), **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def container_environment(render_dir: Path) -> dict[str, str]:
    """What the wsgi container would see, with the secret files it mounts made up here."""
    app_env, wsgi_env = rendered_environment(render_dir)
    environment = {**app_env, **wsgi_env, "DJANGO_SETTINGS_MODULE": "djchat.settings"}
    for name in [name for name in environment if name.endswith("_FILE")]:
        secret = render_dir / name.lower()
        secret.write_text("s" * 64 + "\n")
        environment[name] = str(secret)
    return environment


def test_the_generated_ranges_are_those_the_app_declares():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/app-bounds.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(BOUNDS) >= 15, f"only {len(BOUNDS)} ranges in {APP_BOUNDS}"


@pytest.mark.parametrize("profile", ACCEPTED)
def test_validation_accepts_every_value_at_the_end_of_its_range(runs, profile):
    run = runs[profile]
    assert run.returncode == 0, (
        f"validation refused the {profile} values: {run.failure_messages}\n{run.output}"
    )


@pytest.mark.parametrize("profile", ACCEPTED)
def test_the_role_passes_every_value_to_its_variable_unchanged(runs, scratch, profile):
    assert runs[profile].returncode == 0, runs[profile].output
    app_env, wsgi_env = rendered_environment(scratch / profile)
    passed = {**app_env, **wsgi_env}
    expected = {
        bound["env"]: str(PROFILES[profile][variable]) for variable, bound in BOUNDS.items()
    }
    got = {env: passed.get(env) for env in expected}
    assert got == expected, (
        "app.env / the wsgi environment in compose.yml differ from the values set"
    )


@pytest.mark.parametrize("profile", ACCEPTED)
def test_the_app_settings_start_with_the_rendered_environment(runs, scratch, profile):
    assert runs[profile].returncode == 0, runs[profile].output
    environment = container_environment(scratch / profile)

    result = app_process(environment, "-c", SETTINGS_PROBE)

    assert result.returncode == 0, f"settings.py refused the {profile} values:\n{result.stderr}"
    read = json.loads(result.stdout)
    expected = {
        bound["env"]: PROFILES[profile][variable]
        for variable, bound in BOUNDS.items()
        if not bound["env"].startswith("GUNICORN_")
    }
    assert {env: read.get(env) for env in expected} == expected


@pytest.mark.parametrize("profile", ACCEPTED)
def test_gunicorn_config_loads_the_rendered_environment(runs, scratch, profile):
    assert runs[profile].returncode == 0, runs[profile].output
    environment = container_environment(scratch / profile)

    result = app_process(
        environment,
        *("-m", "gunicorn", "--print-config", "-c", "gunicorn.conf.py", "djchat.wsgi:application"),
    )

    assert result.returncode == 0, (
        f"gunicorn.conf.py refused the {profile} values:\n{result.stderr}"
    )
    printed = dict(re.findall(r"^(\w+)\s+= (.*)$", result.stdout, re.MULTILINE))
    expected = {
        bound["env"]: PROFILES[profile][variable]
        for variable, bound in BOUNDS.items()
        if bound["env"].startswith("GUNICORN_")
    }
    if expected.get("GUNICORN_WORKERS") == 0:  # automatic: the app's own count, asked of it
        expected["GUNICORN_WORKERS"] = int(
            app_process(environment, "-c", AUTO_WORKERS_PROBE).stdout
        )
    read = {env: int(printed[env.removeprefix("GUNICORN_").lower()]) for env in expected}
    assert read == expected


@pytest.mark.parametrize("profile", REJECTED)
def test_validation_refuses_every_value_just_outside_its_range_naming_it(runs, profile):
    run = runs[profile]
    assert run.returncode != 0, f"validation accepted the {profile} values\n{run.output}"
    assert not any(task.startswith("Render") for task in run.tasks_run), run.tasks_run
    expected = {
        f"{variable} must be between {bound['minimum']} and {bound['maximum']} "
        f"(the app's {bound['env']}), got {PROFILES[profile][variable]}"
        for variable, bound in BOUNDS.items()
    }
    # One failure lists every rule broken, a line each.
    reported = {line for message in run.failure_messages for line in message.splitlines()}
    missing = sorted(expected - reported)
    assert not missing, f"not reported: {missing}\nreported: {run.failure_messages}"
