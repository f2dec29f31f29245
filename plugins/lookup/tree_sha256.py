# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The digest of directory trees on the controller: names and contents of every file in them."""

from __future__ import annotations

DOCUMENTATION = r"""
name: tree_sha256
short_description: SHA-256 of directory trees on the controller
description:
  - One digest over the relative path and the content of every regular file under each directory
    given, in a stable order; byte-code caches (C(__pycache__), C(*.pyc)) are left out.
  - The role fingerprints its own code with it, so that a converge with another version of the
    role is never taken for one with nothing to do.
options:
  _terms:
    description: Directories.
    required: true
    type: list
    elements: path
"""

EXAMPLES = r"""
- name: Show the digest of the collection's roles and plugins
  ansible.builtin.debug:
    msg: "{{ lookup('djchat.stack.tree_sha256', role_path ~ '/..', role_path ~ '/../../plugins') }}"
"""

RETURN = r"""
_raw:
  description: One hexadecimal digest for all the directories given.
  type: list
  elements: str
"""

import hashlib
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


def tree_sha256(directories):
    digest = hashlib.sha256()
    for directory in directories:
        if not os.path.isdir(directory):
            raise AnsibleLookupError(f"tree_sha256: {directory} is not a directory")
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(name for name in dirs if name != "__pycache__")
            for name in sorted(files):
                if name.endswith(".pyc"):
                    continue
                path = os.path.join(root, name)
                digest.update(os.path.relpath(path, directory).encode() + b"\0")
                with open(path, "rb") as handle:
                    digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return [tree_sha256([os.path.realpath(term) for term in terms])]
