#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remember what a converge left on the target, and tell a later converge whether it still holds."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: djchat_converged
short_description: Record what a converge left on the target, and whether it still holds
description:
  - A converge that ends well records its fingerprint (a digest of everything it was given, its
    variables, role code and release), the content, owner and mode of the files it rendered, and
    the containers it left serving.
  - A later converge asks whether that record still holds, that is the same fingerprint and every
    watched file as recorded (none added, removed or edited). The containers are the caller's to compare, from
    the ids the record returns.
  - The record holds file digests, never file contents; it is written 0600, root's.
options:
  path:
    description: The record file on the target.
    type: path
    required: true
  state:
    description:
      - C(query) compares the record with I(fingerprint) and the watched files and changes nothing.
      - C(present) writes the record; C(absent) removes it (a converge about to change something).
    type: str
    choices: [query, present, absent]
    default: query
  fingerprint:
    description: Digest of the converge's inputs. Required with C(query) and C(present).
    type: str
  watch:
    description: Files, and directories whose regular files (not subdirectories) are watched.
    type: list
    elements: path
    default: []
  ignore:
    description: File names inside the watched directories that are not watched.
    type: list
    elements: str
    default: []
  containers:
    description: With C(present), the ids of the containers the converge left serving.
    type: list
    elements: str
    default: []
author: djchat-stack maintainers
"""

EXAMPLES = r"""
- name: Ask whether the last converge's record still holds
  djchat.stack.djchat_converged:
    path: /srv/djchat/converged.json
    fingerprint: "{{ inputs | to_json | hash('sha256') }}"
    watch: [/srv/djchat, /srv/djchat/nginx]
  register: last
"""

RETURN = r"""
current:
  description: With C(query), whether the record exists and matches the fingerprint and every file.
  type: bool
  returned: always
reason:
  description: With C(query), why the record does not hold (empty when it does).
  type: str
  returned: always
containers:
  description: With C(query), the container ids recorded as serving.
  type: list
  elements: str
  returned: always
recorded_at:
  description: With C(query), when the record was written (UTC, ISO 8601), or an empty string.
  type: str
  returned: always
"""

import datetime
import hashlib
import json
import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.djchat.stack.plugins.module_utils.files import write_atomically


def file_entry(path):
    """Content digest, owner and mode of one regular file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    info = os.stat(path)
    return {
        "sha256": digest.hexdigest(),
        "uid": info.st_uid,
        "gid": info.st_gid,
        "mode": "%04o" % stat.S_IMODE(info.st_mode),
    }


def watched_files(watch, ignore):
    """{path: entry} of every regular file watched: the files named, and the regular files
    directly inside the directories named."""
    files = {}
    for path in watch:
        if os.path.isdir(path):
            names = sorted(os.listdir(path))
            candidates = [os.path.join(path, name) for name in names if name not in ignore]
        elif os.path.lexists(path):
            candidates = [path]
        else:
            continue
        for candidate in candidates:
            if os.path.isfile(candidate) and not os.path.islink(candidate):
                files[candidate] = file_entry(candidate)
    return files


def read_record(path):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def compare(record, fingerprint, files):
    """Why the record does not hold, or "" when it does."""
    if record is None:
        return "no record of an earlier converge"
    if record.get("fingerprint") != fingerprint:
        return "the variables, the role or the release differ from the last converge"
    recorded = record.get("files", {})
    for path in sorted(set(recorded) | set(files)):
        if path not in files:
            return "%s is gone" % path
        if path not in recorded:
            return "%s is new" % path
        if recorded[path] != files[path]:
            return "%s changed since the last converge" % path
    return ""


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["query", "present", "absent"], default="query"),
            fingerprint=dict(type="str"),
            watch=dict(type="list", elements="path", default=[]),
            ignore=dict(type="list", elements="str", default=[]),
            containers=dict(type="list", elements="str", default=[]),
        ),
        required_if=[("state", "query", ["fingerprint"]), ("state", "present", ["fingerprint"])],
        supports_check_mode=True,
    )
    path, state = module.params["path"], module.params["state"]
    result = dict(changed=False, current=False, reason="", containers=[], recorded_at="")

    if state == "absent":
        result["changed"] = os.path.lexists(path)
        if result["changed"] and not module.check_mode:
            os.unlink(path)
        module.exit_json(**result)

    files = watched_files(module.params["watch"], set(module.params["ignore"]))
    record = read_record(path)

    if state == "query":
        reason = compare(record, module.params["fingerprint"], files)
        result.update(
            current=not reason,
            reason=reason,
            containers=list((record or {}).get("containers", [])),
            recorded_at=str((record or {}).get("recorded_at", "")),
        )
        module.exit_json(**result)

    wanted = {
        "fingerprint": module.params["fingerprint"],
        "files": files,
        "containers": sorted(module.params["containers"]),
    }
    same = record is not None and {key: record.get(key) for key in wanted} == wanted
    # A rewrite of an identical record is left out: the record is bookkeeping, not a change.
    if not same and not module.check_mode:
        wanted["recorded_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        write_atomically(path, json.dumps(wanted, indent=1, sort_keys=True) + "\n")
    result["changed"] = not same
    module.exit_json(**result)


if __name__ == "__main__":
    main()
