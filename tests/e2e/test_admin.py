"""playbooks/admin.yml: the site's first administrator, its password generated on the target.

Runs the playbook as the scenario converges (Stack.playbook), reads the password where the
playbook says it is, and logs in with it."""

from __future__ import annotations

import pytest

from helpers import Stack, logged_in_session, unique


@pytest.mark.disruptive
@pytest.mark.timeout(700)
def test_admin_playbook_creates_an_administrator_once(stack: Stack):
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    username = unique("ops")[:30]

    first = stack.playbook("admin.yml", "-e", f"djchat_admin_username={username}")
    password_file = stack.project_dir / "secrets" / "admin_password"
    password = password_file.read_text().strip()
    second = stack.playbook("admin.yml", "-e", f"djchat_admin_username={username}")

    assert f"Administrator {username}: created" in first.output
    assert first.changed >= 1
    assert f"Administrator {username}: unchanged" in second.output
    assert second.changed == 0, second.output[-3000:]
    assert password not in first.output + second.output  # never in the play's output
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    assert (password_file.stat().st_uid, password_file.stat().st_gid) == (0, 0)
    # The password logs the administrator in (through nginx, as a person would).
    session = logged_in_session(stack, username, password)
    if stack.expect.get("admin_host") or stack.expect.get("public_scheme", "") == "https":
        return  # the admin page itself answers on its own name or scheme (test_proxy.py)
    page = session.get(stack.url("/admin/"), timeout=15)
    assert page.status_code == 200, page.status_code
    assert "Site administration" in page.text
