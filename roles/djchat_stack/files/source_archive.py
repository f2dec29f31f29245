#!/usr/bin/env python3
"""Pack the app source into a reproducible tar archive and print its SHA-256 as JSON.

Usage: source_archive.py SOURCE_DIR ARCHIVE [EXCLUDE_PATTERN ...]

The archive holds regular files and symlinks in sorted order with fixed owner and group, so the
same tree always gives the same bytes: the digest is the content identity of the source (it
becomes part of the app image tag), and the archive is only rewritten when it changes.
Each member's mtime is taken from its own content, not fixed: BuildKit sends the build context
incrementally and skips files whose size and mtime did not change, so with one fixed mtime an edit
that kept a file's size (redis==8.1.0 to redis==8.0.1 in the lock) was built from the old bytes.
Patterns from the source's own .dockerignore are applied on top of those given (simple
.dockerignore syntax: globs on the path relative to the source, "**/" prefixes, no "!" rules).
The Dockerfile and .dockerignore at the top of the source are packed even when .dockerignore lists
them, as docker sends them to the builder even then (listed, they stay out of the image's COPY):
the archive is the build context, and its digest covers the Dockerfile.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import sys
import tarfile


def load_patterns(source: str, extra: list[str]) -> list[str]:
    patterns = list(extra)
    ignore_file = os.path.join(source, ".dockerignore")
    if os.path.isfile(ignore_file):
        with open(ignore_file, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if line and not line.startswith("#") and not line.startswith("!"):
                    patterns.append(line)
    return [p.strip("/").removeprefix("./") for p in patterns]


# Always in the build context (see above).
BUILD_FILES = ("Dockerfile", ".dockerignore")


def excluded(relpath: str, patterns: list[str]) -> bool:
    if relpath in BUILD_FILES:
        return False
    parts = relpath.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        anywhere = pattern.startswith("**/")
        bare = pattern[3:] if anywhere else pattern
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern) or fnmatch.fnmatchcase(prefix, bare):
                return True
            # A pattern without a slash, or one starting with **/, matches a name at any depth.
            if (anywhere or "/" not in bare) and fnmatch.fnmatchcase(
                prefix.rsplit("/", 1)[-1], bare
            ):
                return True
    return False


def content_mtime(content: bytes) -> int:
    """A timestamp that changes when the content does (some second between 1970 and 2038)."""
    return int.from_bytes(hashlib.sha256(content).digest()[:4], "big") & 0x7FFFFFFF


def build(source: str, patterns: list[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(source):
            rel_root = os.path.relpath(root, source)
            rel_root = "" if rel_root == "." else rel_root
            dirs[:] = sorted(d for d in dirs if not excluded(os.path.join(rel_root, d), patterns))
            for name in sorted(files):
                rel = os.path.join(rel_root, name)
                if excluded(rel, patterns):
                    continue
                full = os.path.join(root, name)
                info = tar.gettarinfo(full, arcname=rel)
                if not (info.isfile() or info.issym()):
                    continue
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mode = 0o755 if info.mode & 0o111 else 0o644
                if info.isfile():
                    with open(full, "rb") as handle:
                        content = handle.read()
                    info.mtime = content_mtime(content)
                    tar.addfile(info, io.BytesIO(content))
                else:
                    info.mtime = content_mtime(info.linkname.encode())
                    tar.addfile(info)
    return buffer.getvalue()


def main() -> int:
    source, archive, *extra = sys.argv[1:]
    if not os.path.isdir(source):
        print(json.dumps({"failed": True, "msg": f"source {source} is not a directory"}))
        return 1
    data = build(source, load_patterns(source, extra))
    digest = hashlib.sha256(data).hexdigest()
    current = None
    if os.path.exists(archive):
        with open(archive, "rb") as handle:
            current = hashlib.sha256(handle.read()).hexdigest()
    if current != digest:
        os.makedirs(os.path.dirname(archive) or ".", exist_ok=True)
        with open(archive + ".tmp", "wb") as handle:
            handle.write(data)
        os.replace(archive + ".tmp", archive)
    print(json.dumps({"sha256": digest, "written": current != digest, "bytes": len(data)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
