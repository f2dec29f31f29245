"""The package: the collection built from this checkout, installed into a scratch path and used
from a directory outside the repository, with nothing of the checkout on any search path."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest
import yaml

from playbook import BIN, REPO_ROOT, free_port

GALAXY = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"


def run(
    *command: str, cwd: Path, env: dict[str, str], timeout: int = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
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
    tools = {".venv", ".cache", ".git", ".config", "tests", "molecule", "bench", "collections"}
    assert not tops & tools
    assert not any(name.startswith("app/tests") for name in names)


@pytest.mark.parametrize(
    ("role", "option"),
    [
        ("docker_engine", "djchat_docker_source"),
        ("base_images", "djchat_base_images_prefix"),
        ("djchat_stack", "djchat_asgi_replicas"),
        ("swarm", "djchat_swarm_node_labels"),
    ],
)
def test_ansible_doc_lists_each_role_with_its_argument_specs(outside, role, option):
    root, env = outside
    shown = run(str(BIN / "ansible-doc"), "-t", "role", f"{FQCN}.{role}", cwd=root, env=env)

    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.replace("\x1b[1m", "").replace("\x1b[0m", "")
    assert "ENTRY POINT: main" in text
    assert option in text
    assert str(root / "collections") in text  # the installed copy, not the checkout


def test_ansible_doc_shows_the_module(outside):
    root, env = outside
    module = run(str(BIN / "ansible-doc"), f"{FQCN}.djchat_secret_file", cwd=root, env=env)

    assert module.returncode == 0, module.stderr


def test_the_playbooks_run_by_their_collection_name(outside):
    root, env = outside
    playbooks = sorted(path.stem for path in (REPO_ROOT / "playbooks").glob("*.yml"))
    assert {"site", "teardown", "status", "logs", "rollback", "admin"} <= set(playbooks)
    for playbook in playbooks:
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
        str(BIN / "ansible-playbook"), f"{FQCN}.site", "-i", str(inventory),
        "--tags", "djchat_validate",
        "-e", '{"djchat_trusted_proxies": ["10.0.0.1/8"]}',
        cwd=root, env=env,
    )  # fmt: skip

    assert stopped.returncode != 0
    assert "djchat_trusted_proxies" in stopped.stdout, stopped.stdout[-3000:]
    assert "10.0.0.1/8" in stopped.stdout
    assert "No filter named" not in stopped.stdout + stopped.stderr


@pytest.mark.timeout(1200)
def test_the_installed_collection_deploys_from_outside_the_checkout(outside):
    """`ansible-playbook djchat.stack.site` with the inventory the collection ships (this machine,
    the local base images, the offline wheelhouse) on a port of its own: the app the collection
    carries is built and served through nginx, and the controller's cache lands in
    $XDG_CACHE_HOME, not in the collection. Torn down (purged) afterwards."""
    root, env = outside
    installed = root / "collections/ansible_collections/djchat/stack"
    env = {**env, "XDG_CACHE_HOME": str(root / "xdg-cache")}
    port = free_port()
    stack = [
        "-i", str(installed / "inventory/local"),
        "-e", "djchat_compose_project=djchat-installed",
        "-e", "djchat_project_dir=/srv/djchat-installed",
        "-e", "djchat_app_image_name=djchat-installed/app",
        "-e", f"djchat_http_port={port}",
        "-e", "djchat_docker_install=false",  # the engine the suite runs on is not re-provisioned
    ]  # fmt: skip
    try:
        deployed = run(
            str(BIN / "ansible-playbook"), f"{FQCN}.site", *stack, cwd=root, env=env, timeout=1100
        )
        assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-2000:]

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as home:
            page = home.read().decode()
        stylesheet = re.search(r'href="(/static/chat/chat\.[0-9a-f]+\.css)"', page)
        assert home.status == 200
        assert stylesheet, page[:2000]
        # The hashed name the app's manifest gives, served by nginx from the image built of the
        # app the collection ships.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{stylesheet[1]}", timeout=10) as css:
            assert css.status == 200
            assert b"{" in css.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as ready:
            assert ready.status == 200
        assert (root / "xdg-cache/djchat-stack/source/djchat-installed-app.tar").is_file()
        assert list((root / "xdg-cache/djchat-stack/wheelhouse").glob("py*"))
        assert not (installed / ".cache").exists()
    finally:
        torn = run(
            str(BIN / "ansible-playbook"), f"{FQCN}.teardown", *stack,
            "-e", "djchat_teardown_purge=true", cwd=root, env=env, timeout=600,
        )  # fmt: skip
        assert torn.returncode == 0, torn.stdout[-3000:] + torn.stderr[-1000:]
