"""The package: the collection built from this checkout, installed into a scratch path and used
from a directory outside the repository, with nothing of the checkout on any search path."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from playbook import BIN, REPO_ROOT

GALAXY = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"


def run(*command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    built = run(
        str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out),
        cwd=REPO_ROOT, env=os.environ.copy(),
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("*.tar.gz")
    return path


@pytest.fixture(scope="module")
def outside(tarball, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A directory outside the checkout and an environment that sees only the installed copy."""
    root = tmp_path_factory.mktemp("outside")
    collections = root / "collections"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    env["PATH"] = f"{BIN}:{env['PATH']}"
    # community.docker comes with the controller's ansible package (Galaxy is unreachable here).
    installed = run(
        str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps",
        "-p", str(collections), str(tarball),
        cwd=root, env=env,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return root, env


def test_the_tarball_ships_the_app_and_not_the_checkouts_tools(tarball):
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    tops = {name.split("/", 1)[0] for name in names}

    assert {"app/manage.py", "app/requirements.lock", "LICENSE", "meta/runtime.yml"} <= names
    assert {"plugins/modules/djchat_secret_file.py", "plugins/filter/networks.py"} <= names
    assert "playbooks/site.yml" in names
    assert not tops & {".venv", ".cache", "tests", "molecule", "bench", "collections", ".git"}
    assert not any(name.startswith("app/tests") for name in names)


def test_ansible_doc_lists_the_role_with_its_entry_points_and_the_module(outside):
    root, env = outside
    role = run(str(BIN / "ansible-doc"), "-t", "role", f"{FQCN}.djchat_stack", cwd=root, env=env)
    module = run(str(BIN / "ansible-doc"), f"{FQCN}.djchat_secret_file", cwd=root, env=env)

    assert role.returncode == 0, role.stderr
    assert "ENTRY POINT: main" in role.stdout.replace("\x1b[1m", "").replace("\x1b[0m", "")
    assert str(root / "collections") in role.stdout  # the installed copy, not the checkout
    assert module.returncode == 0, module.stderr


def test_the_playbooks_run_by_their_collection_name(outside):
    root, env = outside
    for playbook in ("site", "teardown", "status", "rollback", "engine", "base_images"):
        checked = run(
            str(BIN / "ansible-playbook"), f"{FQCN}.{playbook}", "--syntax-check",
            "-i", "localhost,", cwd=root, env=env,
        )  # fmt: skip
        assert checked.returncode == 0, f"{playbook}: {checked.stdout}{checked.stderr}"


def test_the_installed_role_validates_with_its_own_plugins(outside):
    """A bad value stops the play in validation, in the role's own words: the installed filter
    plugin answered (an unresolved plugin would fail with another message)."""
    root, env = outside
    inventory = root / "hosts.yml"
    inventory.write_text(
        "djchat:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {BIN / 'python'}\n"
    )
    stopped = run(
        str(BIN / "ansible-playbook"), f"{FQCN}.site", "-i", str(inventory), "--tags", "validate",
        "-e", '{"djchat_trusted_proxies": ["10.0.0.1/8"]}',
        cwd=root, env=env,
    )  # fmt: skip

    assert stopped.returncode != 0
    assert "djchat_trusted_proxies" in stopped.stdout, stopped.stdout[-3000:]
    assert "10.0.0.1/8" in stopped.stdout
    assert "No filter named" not in stopped.stdout + stopped.stderr
