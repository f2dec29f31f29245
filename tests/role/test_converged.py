"""The converge record (plugins/modules/djchat_converged.py), run as Ansible runs a module, on real
files: a record holds while nothing differs, and says what differs when something does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins/modules/djchat_converged.py"
# The module imports the collection's module_utils (ansible_collections.djchat.stack...), found
# through the checkout's link to itself, as Ansible would find it when packing the module.
COLLECTIONS = ROOT / "collections"


def converged(tmp_path: Path, **args) -> dict:
    arguments = tmp_path / "args.json"
    arguments.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    environment = {**os.environ, "PYTHONPATH": str(COLLECTIONS)}
    result = subprocess.run(
        [sys.executable, MODULE, arguments],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )
    return json.loads(result.stdout)


def project(tmp_path: Path) -> tuple[Path, dict]:
    directory = tmp_path / "project"
    (directory / "nginx").mkdir(parents=True)
    (directory / "compose.yml").write_text("services: {}\n")
    (directory / "nginx" / "nginx.conf").write_text("events {}\n")
    (directory / "app-source.tar").write_bytes(b"ignored")
    args = {
        "path": str(directory / "converged.json"),
        "fingerprint": "f1",
        "watch": [str(directory), str(directory / "nginx")],
        "ignore": ["converged.json", "app-source.tar"],
    }
    return directory, args


def test_a_record_holds_until_a_file_or_the_fingerprint_differs(tmp_path):
    directory, args = project(tmp_path)
    assert converged(tmp_path, **args)["reason"] == "no record of an earlier converge"

    written = converged(tmp_path, state="present", containers=["b", "a"], **args)
    assert written["changed"] is True
    record = directory / "converged.json"
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    assert converged(tmp_path, state="present", containers=["a", "b"], **args)["changed"] is False

    held = converged(tmp_path, **args)
    assert (held["current"], held["reason"], held["containers"]) == (True, "", ["a", "b"])
    (directory / "app-source.tar").write_bytes(b"not watched")
    assert converged(tmp_path, **args)["current"] is True

    assert (
        "differ from the last converge"
        in converged(tmp_path, **{**args, "fingerprint": "f2"})["reason"]
    )
    conf = directory / "nginx" / "nginx.conf"
    conf.write_text("events { }\n")
    assert converged(tmp_path, **args)["reason"] == f"{conf} changed since the last converge"
    conf.write_text("events {}\n")
    os.chmod(conf, 0o600)  # same bytes, another mode
    assert converged(tmp_path, **args)["reason"] == f"{conf} changed since the last converge"
    os.chmod(conf, 0o644)
    assert converged(tmp_path, **args)["current"] is True
    (directory / "nginx" / "extra.conf").write_text("")
    assert converged(tmp_path, **args)["reason"].endswith("extra.conf is new")
    (directory / "nginx" / "extra.conf").unlink()
    (directory / "compose.yml").unlink()
    assert converged(tmp_path, **args)["reason"].endswith("compose.yml is gone")


def test_forgetting_removes_the_record_and_check_mode_writes_nothing(tmp_path):
    directory, args = project(tmp_path)
    record = directory / "converged.json"
    assert converged(tmp_path, state="present", _ansible_check_mode=True, **args)["changed"]
    assert not record.exists()
    converged(tmp_path, state="present", **args)
    path = args["path"]
    assert converged(tmp_path, path=path, state="absent", _ansible_check_mode=True)["changed"]
    assert record.exists()
    assert converged(tmp_path, path=path, state="absent")["changed"]
    assert not record.exists()
    assert converged(tmp_path, path=path, state="absent")["changed"] is False
