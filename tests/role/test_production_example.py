"""The production example is a cluster an operator can copy: three hosts in the groups the swarm
role forms a swarm from, the stateful services' labels each on exactly one node, swarm mode on."""

from __future__ import annotations

import json
import subprocess

from playbook import BIN, REPO_ROOT

EXAMPLE = REPO_ROOT / "inventory" / "production.example"


def test_production_example_is_a_three_host_cluster_with_each_stateful_label_once():
    listed = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(EXAMPLE), "--list"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    inventory = json.loads(listed.stdout)
    managers = inventory["djchat_managers"]["hosts"]
    workers = inventory["djchat_workers"]["hosts"]
    assert len(managers) >= 1
    assert len(managers) + len(workers) == 3
    assert not set(managers) & set(workers)
    hostvars = inventory["_meta"]["hostvars"]
    for label in ("djchat.redis", "djchat.postgres"):
        carriers = [h for h in hostvars if label in hostvars[h].get("djchat_swarm_node_labels", {})]
        assert len(carriers) == 1, f"{label} on {carriers}: the service runs on exactly one node"
    group_vars = (EXAMPLE / "group_vars" / "djchat" / "main.yml").read_text()
    assert "\ndjchat_orchestrator: swarm\n" in group_vars
