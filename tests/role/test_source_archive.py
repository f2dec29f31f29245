"""The controller's source archive (files/source_archive.py): same tree, same bytes; an edit, even
one that keeps a file's size, gives that file another mtime, so BuildKit's incremental context
transfer (which compares size and mtime) sends the new bytes to the build."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "roles/djchat_stack/files/source_archive.py"


def pack(source: Path, archive: Path) -> dict:
    result = subprocess.run(
        [sys.executable, SCRIPT, source, archive, "**/__pycache__"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {info.name: info for info in tar.getmembers()}


def test_same_tree_same_bytes_and_a_same_size_edit_changes_the_files_mtime(tmp_path):
    source = tmp_path / "app"
    (source / "__pycache__").mkdir(parents=True)
    (source / "__pycache__" / "x.pyc").write_bytes(b"compiled")
    (source / "requirements.lock").write_text("redis==8.1.0\n")
    (source / "manage.py").write_text("print('hi')\n")
    archive = tmp_path / "out" / "app.tar"

    first = pack(source, archive)
    assert first["written"]
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == first["sha256"]
    assert pack(source, archive) == {**first, "written": False}
    before = members(archive)
    assert sorted(before) == ["manage.py", "requirements.lock"]

    (source / "requirements.lock").write_text("redis==8.0.1\n")
    second = pack(source, archive)
    after = members(archive)

    assert second["sha256"] != first["sha256"]
    assert after["requirements.lock"].size == before["requirements.lock"].size
    assert after["requirements.lock"].mtime != before["requirements.lock"].mtime
    assert after["manage.py"].mtime == before["manage.py"].mtime  # untouched: as it was
