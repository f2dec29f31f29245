"""Cluster mode places redis and the cluster's PostgreSQL on the node labelled for each
(`djchat.redis`, `djchat.postgres`: `"true"` in the host's `djchat_swarm_node_labels`). A converge
stops in validation, before any change on any node, unless exactly one host of djchat_managers and
djchat_workers carries each label (with none the service never starts, with two its data volume
could be made on either), and says which label, which variable and which hosts.

Three hosts of this machine (connection local, no Docker engine asked): the refused inventories
go through playbooks/site.yml, the real entry point, which must fail in its validation with
nothing changed; the accepted ones through validate.yml (the role's validation alone), since a
converge that passes it goes on to form the swarm.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from playbook import REPO_ROOT, PlaybookRun, run_playbook

VALIDATE = Path(__file__).resolve().parent / "validate.yml"
SITE = REPO_ROOT / "playbooks" / "site.yml"
HOSTS = {"djchat_managers": ["node1"], "djchat_workers": ["node2", "node3"]}
VARIABLE = "djchat_swarm_node_labels"

# The only tasks a refused converge may reach: facts, the argument specs, the rules.
ROLE = "djchat.stack.djchat_stack"
VALIDATION_TASKS = {
    "Gathering Facts",
    f"{ROLE} : Validating arguments against arg spec 'main' - Build djchat on a Docker "
    "host and run redis, wsgi, asgi and nginx with Compose",
    f"{ROLE} : Check value ranges and cross-field rules",
}


@dataclass(frozen=True)
class Case:
    labels: dict[str, dict[str, object]]  # host -> its djchat_swarm_node_labels
    variables: dict[str, object]
    refused: str = ""  # the label the refusal names ("" = accepted)
    carriers: tuple[str, ...] = ()  # the hosts the refusal names as carrying it


ONE_EACH = {"node1": {"djchat.postgres": "true"}, "node2": {"djchat.redis": "true"}}
CASES = {
    "one-each": Case(ONE_EACH, {}),
    # An outside database: no postgres service, no label needed.
    "database-elsewhere": Case(
        {"node2": {"djchat.redis": "true"}},
        {"djchat_database_url": "postgres://db.example.com/djchat"},
    ),
    # "false" is not the label the placement constraint asks for.
    "no-redis-node": Case(
        {"node1": {"djchat.postgres": "true"}, "node2": {"djchat.redis": "false"}},
        {},
        refused="djchat.redis",
    ),
    # A YAML true counts as "true" (the constraint matches either case).
    "two-redis-nodes": Case(
        {**ONE_EACH, "node3": {"djchat.redis": True}},
        {},
        refused="djchat.redis",
        carriers=("node2", "node3"),
    ),
    "no-postgres-node": Case({"node2": {"djchat.redis": "true"}}, {}, refused="djchat.postgres"),
}


def cluster_inventory(path: Path, labels: dict[str, dict[str, object]]) -> str:
    """Three hosts of this machine in the swarm's groups (children of djchat), with `labels`."""
    host_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ansible_become": False,  # root already
    }
    children = {
        group: {"hosts": {host: {VARIABLE: labels.get(host, {})} for host in hosts}}
        for group, hosts in HOSTS.items()
    }
    path.write_text(json.dumps({"djchat": {"vars": host_vars, "children": children}}))
    return str(path)


def run_case(name: str, case: Case, scratch: Path) -> PlaybookRun:
    return run_playbook(
        SITE if case.refused else VALIDATE,
        {
            "djchat_orchestrator": "swarm",
            "djchat_compose_project": "djchat-role-placement",
            "djchat_project_dir": str(scratch / name / "project"),
            **case.variables,
        },
        inventory=cluster_inventory(scratch / f"{name}.json", case.labels),
        host="node1",
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, PlaybookRun]:
    scratch = tmp_path_factory.mktemp("placement")
    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        futures = {name: pool.submit(run_case, name, case, scratch) for name, case in CASES.items()}
    results = {name: future.result() for name, future in futures.items()}
    assert not list(scratch.glob("*/project")), "a project directory was created"
    return results


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if not case.refused])
def test_one_node_per_label_is_accepted(runs, name):
    run = runs[name]
    assert run.returncode == 0, f"{name}: refused: {run.failure_messages}\n{run.output}"


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.refused])
def test_a_label_not_on_exactly_one_node_stops_the_converge_in_validation(runs, name):
    case, run = CASES[name], runs[name]
    assert run.returncode != 0, f"{name}: the converge went on\n{run.output}"
    beyond = [task for task in run.tasks_run if task not in VALIDATION_TASKS]
    assert not beyond, f"{name}: tasks beyond validation ran: {beyond}\n{run.output}"
    assert run.changed == 0
    named = [message for message in run.failure_messages if case.refused in message]
    assert named, f"{name}: no message names {case.refused}: {run.failure_messages}"
    message = named[0]
    assert VARIABLE in message
    if case.carriers:
        assert f"{len(case.carriers)} hosts have it: {', '.join(case.carriers)}" in message
    else:
        assert "no host has it" in message
    # Only the label that is wrong is named.
    for other in {"djchat.redis", "djchat.postgres"} - {case.refused}:
        assert other not in " ".join(run.failure_messages), run.failure_messages
