"""What the deployed stack exposes: only nginx is published; Redis answers nobody without its
password and accepts the generated one; every process runs as a non-root uid with no
capabilities, no privilege gain and a read-only root filesystem; secret files are 0600 and
their values appear in no image layer, compose file, environment file or `docker inspect` output.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from helpers import Stack, docker

SECRET_FILES = ("django_secret_key", "redis_password", "redis_auth.conf")
LONG_RUNNING = {"redis", "wsgi", "nginx"}


@pytest.fixture(scope="module")
def secret_values(stack: Stack) -> dict[str, str]:
    secrets_dir = stack.project_dir / "secrets"
    if not secrets_dir.is_dir():
        pytest.skip(f"{secrets_dir} is not readable on this host")
    values = {}
    for name in SECRET_FILES:
        value = (secrets_dir / name).read_text().strip()
        values[name] = value.removeprefix("requirepass ")
    assert all(len(value) >= 32 for value in values.values()), (
        "a secret is shorter than 32 characters"
    )
    return values


def test_only_nginx_is_published_and_only_on_loopback(stack: Stack):
    published = {c.name: c.published_ports for c in stack.containers() if c.published_ports}
    print(f"\npublished: {published}")
    assert {name.rsplit("-", 2)[-2] for name in published} == {"nginx"}, published
    for ports in published.values():
        assert {host_ip for _, host_ip, _ in ports} == {"127.0.0.1"}, ports


def test_no_container_uses_the_host_network_or_privileged_mode(stack: Stack):
    for container in stack.containers():
        host = container.attrs["HostConfig"]
        assert not host.get("Privileged"), container.name
        assert host.get("NetworkMode") not in ("host",), container.name
        assert host.get("PidMode") in ("", None), container.name
        assert not any(
            mount.get("Source") == "/var/run/docker.sock" for mount in container.attrs["Mounts"]
        )


def test_redis_needs_its_password_and_takes_the_generated_one(stack: Stack, secret_values):
    redis = stack.service("redis")
    anonymous = redis.exec("redis-cli", "PING", check=False)
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr
    wrong = redis.exec(
        "redis-cli", "--no-auth-warning", "-a", "wrong-password", "PING", check=False
    )
    assert "PONG" not in wrong.stdout
    # The password reaches redis-cli from the mounted secret, never on a command line we print.
    right = redis.exec(
        "sh",
        "-c",
        "REDISCLI_AUTH=\"$(sed -n 's/^requirepass //p' /run/secrets/redis_auth)\" redis-cli PING",
    )
    assert right.stdout.strip() == "PONG"


REDIS_ADMIN_COMMANDS = (
    "FLUSHALL", "FLUSHDB", "SHUTDOWN NOSAVE", "CONFIG GET maxmemory", "DEBUG SLEEP 0", "MONITOR",
    "ACL SETUSER intruder on", "REPLICAOF 203.0.113.1 6379",
)  # fmt: skip
REDIS_APP_COMMANDS = ("EVAL 'return 1' 0", "CLIENT SETNAME probe")


def test_the_password_does_not_give_redis_administration(stack: Stack):
    """Whoever gets the password (it is in every app container) cannot wipe, stop, reconfigure
    or watch Redis; the app's own commands (scripts, client names) still work."""
    redis = stack.service("redis")
    auth = "REDISCLI_AUTH=\"$(sed -n 's/^requirepass //p' /run/secrets/redis_auth)\" redis-cli"
    answers = {}
    for command in REDIS_ADMIN_COMMANDS + REDIS_APP_COMMANDS:
        result = redis.exec("sh", "-c", f"{auth} {command}", check=False, timeout=15)
        answers[command] = (result.stdout + result.stderr).strip().splitlines()[0][:60]
    print(f"\nredis answers: {answers}")
    for command, answer in answers.items():
        if command in REDIS_APP_COMMANDS:
            assert answer in ("1", "(integer) 1", "OK"), (command, answer)
        else:
            assert "unknown command" in answer, (command, answer)
    assert redis.running


def process_uids(container) -> list[tuple[int, str]]:
    rows = docker("top", container.name, "-eo", "pid,uid,args").stdout.splitlines()[1:]
    return [(int(row.split(None, 2)[1]), row.split(None, 2)[2]) for row in rows]


def test_every_process_runs_as_a_non_root_user(stack: Stack):
    for container in stack.containers():
        if not container.running:
            continue
        uids = process_uids(container)
        print(f"\n{container.name}: uids {sorted({uid for uid, _ in uids})}")
        assert uids, container.name
        assert all(uid != 0 for uid, _ in uids), f"{container.name} runs as root: {uids}"
        assert container.attrs["Config"]["User"] not in ("", "0", "root", "0:0")


def test_long_running_containers_are_hardened(stack: Stack):
    for container in stack.containers():
        if container.service not in LONG_RUNNING and not container.service.startswith("asgi"):
            continue
        host = container.attrs["HostConfig"]
        assert host.get("CapDrop") == ["ALL"], f"{container.name}: CapDrop {host.get('CapDrop')}"
        assert not host.get("CapAdd"), f"{container.name}: CapAdd {host.get('CapAdd')}"
        assert "no-new-privileges:true" in (host.get("SecurityOpt") or []), container.name
        assert host.get("ReadonlyRootfs") is True, (
            f"{container.name} has a writable root filesystem"
        )
        assert host.get("RestartPolicy", {}).get("Name") in ("unless-stopped", "always"), (
            container.name
        )
        assert container.attrs["Config"].get("Healthcheck"), f"{container.name} has no health check"
        effective = container.exec("grep", "CapEff", "/proc/1/status").stdout.split()[-1]
        assert int(effective, 16) == 0, f"{container.name}: effective capabilities {effective}"


def test_secret_files_are_0600_and_owned_by_their_reader(stack: Stack, secret_values):
    secrets_dir = stack.project_dir / "secrets"
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    for name in SECRET_FILES:
        mode = stat.S_IMODE((secrets_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name}: mode {oct(mode)}"
        assert (secrets_dir / name).stat().st_uid != 0, (
            f"{name} is owned by root: its reader cannot open it"
        )


def leaks(text: str, secret_values: dict[str, str]) -> list[str]:
    return [name for name, value in secret_values.items() if value in text]


def test_secrets_are_in_no_compose_or_environment_file(stack: Stack, secret_values):
    for path in [stack.project_dir / "compose.yml", stack.project_dir / "app.env"]:
        assert not leaks(path.read_text(), secret_values), f"a secret value is in {path}"


def test_secrets_are_in_no_docker_inspect_output(stack: Stack, secret_values):
    for container in stack.containers():
        dump = json.dumps(container.attrs)
        assert not leaks(dump, secret_values), f"`docker inspect {container.name}` shows a secret"
        env = container.attrs["Config"].get("Env") or []
        direct = [
            e.split("=", 1)[0]
            for e in env
            if e.split("=", 1)[0] in ("DJANGO_SECRET_KEY", "REDIS_PASSWORD")
        ]
        assert not direct, f"{container.name} passes {direct} as plain variables (use *_FILE)"


def test_secrets_are_in_no_image_layer_or_history(stack: Stack, secret_values):
    images = {container.attrs["Config"]["Image"] for container in stack.containers()}
    for image in sorted(images):
        history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
        inspect = docker("image", "inspect", image).stdout
        assert not leaks(history + inspect, secret_values), f"{image}: a secret is in its history"
    app_image = next(image for image in images if "/app:" in image)
    # The files themselves: nothing under /run/secrets or the app directory is baked in.
    listing = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        app_image,
        "-c",
        "ls -A /run/secrets 2>/dev/null;"
        " grep -rlI -e SECRET_KEY= -e requirepass /app /opt/venv/bin 2>/dev/null | head",
        check=False,
    ).stdout
    print(f"\n{app_image}: /run/secrets and secret-looking files: {listing.split() or 'none'}")
    assert not listing.strip(), f"{app_image} carries {listing.split()}"


def test_secrets_are_not_in_the_shipped_build_context(stack: Stack, secret_values):
    build = stack.project_dir / "build"
    for path in Path(build).rglob("*"):
        if path.is_file() and path.stat().st_size < 2_000_000:
            assert not leaks(path.read_text(errors="replace"), secret_values), (
                f"a secret is in {path}"
            )
