# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files the collection's modules write on the target."""

from __future__ import annotations

import os
import tempfile


def write_atomically(path, content, mode=0o600, uid=-1, gid=-1):
    """Write `content` to `path` through a temporary file beside it that has its final mode and
    owner (uid/gid -1: unchanged) before a byte is written, synced, then renamed over `path`: the
    path only ever holds the old file or the whole new one. The temporary file is removed on
    failure. (AnsibleModule.atomic_move is not used: on a new file it sets a umask mode and the
    process's owner, after the rename.)"""
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, mode)
        os.fchown(fd, uid, gid)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
