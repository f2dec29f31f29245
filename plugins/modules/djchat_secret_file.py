#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create a secret file on the target once, from fresh randomness, and keep it afterwards."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: djchat_secret_file
short_description: Generate a secret file on the target on first run and reuse it afterwards
description:
  - Writes a file holding a random token (or a value derived from another secret file) with the
    given owner and mode, only when it is missing or, for derived files, out of date.
  - The secret is generated on the target itself with Python's C(secrets) module; it never
    travels to the controller and is never returned by the module.
  - Supports check mode and reports C(changed) when the file would be created or its
    owner, group or mode would be corrected.
options:
  path:
    description: File to create.
    type: path
    required: true
  length:
    description: Bytes of randomness of a generated token (URL-safe base64, about 1.3 characters per byte).
    type: int
    default: 48
  derive_from:
    description:
      - Instead of generating a token, take the value from this file (its content, trailing newline
        stripped). The file is rewritten whenever the source changes.
    type: path
  content_format:
    description: How the value is written; C({value}) is replaced by the token.
    type: str
    default: "{value}"
  owner:
    description: Numeric uid owning the file (the uid the consuming container runs as).
    type: int
    required: true
  group:
    description: Numeric gid of the file.
    type: int
    required: true
  mode:
    description: Octal mode of the file.
    type: str
    default: "0400"
author: djchat-stack maintainers
"""

EXAMPLES = r"""
- name: Generate the Django secret key on first run
  djchat_secret_file:
    path: /srv/djchat/secrets/django_secret_key
    length: 64
    owner: 10001
    group: 10001
"""

RETURN = r"""
created:
  description: Whether the file's content was (or in check mode would be) written.
  type: bool
  returned: always
"""

import os
import secrets

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.djchat.stack.plugins.module_utils.files import write_atomically


def read_value(path):
    with open(path, "r", encoding="utf-8") as handle:
        return handle.read().rstrip("\r\n")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            length=dict(type="int", default=48, no_log=False),
            derive_from=dict(type="path"),
            content_format=dict(type="str", default="{value}"),
            owner=dict(type="int", required=True),
            group=dict(type="int", required=True),
            mode=dict(type="str", default="0400"),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    mode = int(module.params["mode"], 8)
    uid, gid = module.params["owner"], module.params["group"]
    fmt = module.params["content_format"]
    source = module.params["derive_from"]
    if "{value}" not in fmt:
        module.fail_json(msg="content_format must contain {value}")
    if module.params["length"] < 16:
        module.fail_json(msg="length must be at least 16 bytes")

    exists = os.path.exists(path)
    write = not exists
    if source is not None:
        if not os.path.exists(source):
            if module.check_mode:
                module.exit_json(changed=True, created=True)
            module.fail_json(msg="derive_from %s does not exist" % source)
        wanted = fmt.format(value=read_value(source)) + "\n"
        if exists:
            with open(path, "r", encoding="utf-8") as handle:
                write = handle.read() != wanted
    elif write:
        wanted = fmt.format(value=secrets.token_urlsafe(module.params["length"])) + "\n"

    if write:
        if not module.check_mode:
            write_atomically(path, wanted, mode=mode, uid=uid, gid=gid)
        module.exit_json(changed=True, created=True)

    status = os.stat(path)
    fix = status.st_uid != uid or status.st_gid != gid or (status.st_mode & 0o7777) != mode
    if fix and not module.check_mode:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    module.exit_json(changed=fix, created=False)


if __name__ == "__main__":
    main()
