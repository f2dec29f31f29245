"""Typos in group_vars stop the deploy before it changes anything, with a message naming the
variable. Each case runs playbooks/site.yml (the real entry point, inventory/local) with one bad
value given as an extra variable and a project directory of its own, then checks that:

- the playbook failed in validation (argument specs or tasks/validate.yml), and no task outside
  validation ran: nothing was changed on the target;
- a failure message names the variable;
- the project directory was never created, and Docker holds no container, volume, network or
  image of the project.

Needs no deployed stack; the cases run a few at a time (each is a full ansible-playbook run).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import REPO_ROOT, docker
from playbook import free_port, run_playbook

PROJECT = "djchat-resilience-badvars"
IMAGE = f"{PROJECT}/app"
DIR_PREFIX = f"/srv/{PROJECT}-"

# The only tasks that may run before the failure: fact gathering and validation.
ROLE = "djchat.stack.djchat_stack"  # the role's name in task results (its collection's FQCN)
VALIDATION_TASKS = {
    "Gathering Facts",
    f"{ROLE} : Validating arguments against arg spec 'main' - Build djchat on a Docker "
    "host and run redis, wsgi, asgi and nginx with Compose",
    f"{ROLE} : Check value ranges and cross-field rules",
    f"{ROLE} : List this project's containers",
    f"{ROLE} : Note whether nginx is serving",
    f"{ROLE} : Probe the published ports",
    f"{ROLE} : Check that nothing but this stack's nginx listens on the published ports",
}


@dataclass(frozen=True)
class Case:
    name: str
    variables: dict[str, object]
    named: str  # the variable the failure message must name


def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 held by "another service" (a listening socket of this test)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def cases(port_taken: int) -> list[Case]:
    return [
        Case("negative-workers", {"djchat_gunicorn_workers": -1}, "djchat_gunicorn_workers"),
        Case("zero-asgi-replicas", {"djchat_asgi_replicas": 0}, "djchat_asgi_replicas"),
        Case("replicas-over-limit", {"djchat_asgi_replicas": 17}, "djchat_asgi_replicas"),
        Case("port-out-of-range", {"djchat_http_port": 70000}, "djchat_http_port"),
        Case("port-zero", {"djchat_http_port": 0}, "djchat_http_port"),
        Case("port-taken", {"djchat_http_port": port_taken}, "djchat_http_port"),
        Case(
            "unknown-worker-class",
            {"djchat_gunicorn_worker_class": "eventlet"},
            "djchat_gunicorn_worker_class",
        ),
        Case("tls-without-certificate", {"djchat_tls_enabled": True}, "djchat_tls_enabled"),
        Case(
            "tls-self-signed-and-certificate",
            {
                "djchat_tls_enabled": True,
                "djchat_tls_self_signed": True,
                "djchat_tls_certificate": "/etc/hostname",
                "djchat_tls_certificate_key": "/etc/hostname",
            },
            "djchat_tls_self_signed",
        ),
        Case("non-boolean-tls-flag", {"djchat_tls_enabled": "maybe"}, "djchat_tls_enabled"),
        Case(
            "non-boolean-persistence",
            {"djchat_redis_persistence": "sometimes"},
            "djchat_redis_persistence",
        ),
        Case("non-integer-threads", {"djchat_gunicorn_threads": "four"}, "djchat_gunicorn_threads"),
        Case("bad-hostname", {"djchat_server_names": ["chat example!.com"]}, "djchat_server_names"),
        Case("no-hostnames", {"djchat_server_names": []}, "djchat_server_names"),
        Case("bad-bind-address", {"djchat_bind_address": "999.0.0.1"}, "djchat_bind_address"),
        Case(
            "bad-compose-project",
            {"djchat_compose_project": "Djchat Prod"},
            "djchat_compose_project",
        ),
        Case("relative-project-dir", {"djchat_project_dir": "srv/djchat"}, "djchat_project_dir"),
        Case(
            "bad-body-size",
            {"djchat_nginx_client_max_body_size": "1 MB"},
            "djchat_nginx_client_max_body_size",
        ),
        Case(
            "redis-limit-below-maxmemory",
            {"djchat_redis_memory": "100m", "djchat_redis_maxmemory": "256mb"},
            "djchat_redis_memory",
        ),
        Case(
            "ping-slower-than-nginx-timeout",
            {"djchat_asgi_ping_interval": 900},
            "djchat_asgi_ping_interval",
        ),
        Case(
            "nofile-below-connections",
            {"djchat_nginx_worker_rlimit_nofile": 1000},
            "djchat_nginx_worker_rlimit_nofile",
        ),
        Case(
            "zero-rate-limit",
            {"djchat_chat_rate_limit_messages": 0},
            "djchat_chat_rate_limit_messages",
        ),
        # Validation once accepted 0 here, which the app refuses (its range is the app's now).
        Case("zero-resume-limit", {"djchat_chat_resume_limit": 0}, "djchat_chat_resume_limit"),
        Case(
            "unknown-log-level", {"djchat_django_log_level": "VERBOSE"}, "djchat_django_log_level"
        ),
        Case(
            "secret-in-extra-env",
            {"djchat_django_extra_env": {"DJANGO_SECRET_KEY": "hunter2"}},
            "djchat_django_extra_env",
        ),
        Case("bad-image-tag", {"djchat_app_image_tag": "v1 final!"}, "djchat_app_image_tag"),
        Case("bad-log-driver", {"djchat_log_driver": "json file"}, "djchat_log_driver"),
        Case(
            "log-option-not-a-value",
            {"djchat_log_options": {"tag": ["a", "list"]}},
            "djchat_log_options",
        ),
        Case(
            "zero-worker-connections",
            {"djchat_nginx_worker_connections": 0},
            "djchat_nginx_worker_connections",
        ),
    ]


@dataclass
class Outcome:
    case: Case
    project_dir: str
    returncode: int
    tasks_run: list[str]
    changed: int
    failure_messages: list[str]
    output: str


def run_case(case: Case) -> Outcome:
    project_dir = DIR_PREFIX + case.name
    variables = {
        "djchat_compose_project": PROJECT,
        "djchat_project_dir": project_dir,
        "djchat_app_image_name": IMAGE,
        "djchat_http_port": free_port(),
        **case.variables,
    }
    run = run_playbook(
        REPO_ROOT / "playbooks" / "site.yml",
        variables,
        inventory=str(REPO_ROOT / "inventory" / "local"),
        # A relative djchat_project_dir would land in the working directory: a scratch one.
        cwd=scratch_dir(),
        timeout=300,
    )
    return Outcome(
        case=case,
        project_dir=project_dir
        if case.name != "relative-project-dir"
        else case.variables["djchat_project_dir"],
        returncode=run.returncode,
        tasks_run=run.tasks_run,
        changed=run.changed,
        failure_messages=run.failure_messages,
        output=run.output,
    )


_SCRATCH = Path(tempfile.gettempdir()) / "djchat-resilience-badvars"


def scratch_dir() -> Path:
    _SCRATCH.mkdir(exist_ok=True)
    return _SCRATCH


@pytest.fixture(scope="module")
def outcomes() -> Iterator[dict[str, Outcome]]:
    shutil.rmtree(_SCRATCH, ignore_errors=True)
    port_holder = taken_port()
    port = next(port_holder)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(run_case, cases(port)))
    finally:
        port_holder.close()
    rejected = [o for o in results if o.returncode != 0 and o.failure_messages]
    print(
        f"\nbad variables: {len(results)} tried, {len(rejected)} rejected, "
        f"{sum(o.changed for o in results)} changes on the target"
    )
    for outcome in results:
        print(f"  {outcome.case.name:34} -> {' | '.join(outcome.failure_messages)[:150]!r}")
    yield {outcome.case.name: outcome for outcome in results}
    remove_leftovers(results)


def remove_leftovers(results: list[Outcome]) -> None:
    """Undo a deploy that validation failed to stop (the tests report it as a failure), so a
    red run leaves nothing of the bad-variables project behind."""
    if project_objects():
        docker("compose", "-p", PROJECT, "down", "--volumes", "--remove-orphans", timeout=300)
        images = docker("image", "ls", "--quiet", IMAGE).stdout.split()
        if images:
            docker("image", "rm", "--force", *sorted(set(images)), check=False)
    for outcome in results:
        if outcome.project_dir.startswith(DIR_PREFIX):
            shutil.rmtree(outcome.project_dir, ignore_errors=True)
    shutil.rmtree(_SCRATCH, ignore_errors=True)


def project_objects() -> list[str]:
    """Whatever Docker holds of the bad-variables project: containers, volumes, networks, images."""
    label = f"label=com.docker.compose.project={PROJECT}"
    found = []
    for kind in (["container", "ls", "--all"], ["volume", "ls"], ["network", "ls"]):
        found += docker(*kind, "--quiet", "--filter", label).stdout.split()
    found += docker("image", "ls", "--quiet", IMAGE).stdout.split()
    return found


def test_at_least_fifteen_bad_values_are_tried():
    assert len(cases(1)) >= 15


@pytest.mark.parametrize("name", [case.name for case in cases(1)])
def test_bad_value_is_rejected_before_any_change(outcomes: dict[str, Outcome], name: str):
    outcome = outcomes[name]
    assert outcome.returncode != 0, f"{name}: the playbook succeeded with {outcome.case.variables}"
    outside_validation = [task for task in outcome.tasks_run if task not in VALIDATION_TASKS]
    assert not outside_validation, (
        f"{name}: tasks beyond validation ran: {outside_validation}\n{outcome.output}"
    )
    assert outcome.changed == 0, f"{name}: {outcome.changed} changes reported"
    named = [message for message in outcome.failure_messages if outcome.case.named in message]
    assert named, (
        f"{name}: no failure message names {outcome.case.named}; messages: "
        f"{outcome.failure_messages}\n{outcome.output}"
    )
    assert not (scratch_dir() / outcome.project_dir).exists(), (
        f"{name}: the project directory {outcome.project_dir} was created"
    )


def test_target_was_not_touched(outcomes: dict[str, Outcome]):
    created = [o.project_dir for o in outcomes.values() if (scratch_dir() / o.project_dir).exists()]
    assert not created, f"project directories created: {created}"
    assert not project_objects(), f"Docker objects of {PROJECT} exist: {project_objects()}"
