"""A converge with nothing to change stops after its smoke check (roles/djchat_stack/tasks/
unchanged.yml), and anything that differs from the last good converge sends it the whole way:
a hand-edited file is rendered again, a stopped service is started again, and then the next
converge is the short one again."""

from __future__ import annotations

import pytest

from helpers import Stack, said

pytestmark = [pytest.mark.disruptive, pytest.mark.timeout(900)]

SHORT = "Nothing changed since the converge of"
RENDERS = "Render the nginx configuration"  # a task of the whole converge, never of the short one


def converge(stack: Stack) -> str:
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    return said(stack.playbook("site.yml", timeout=600))


def short(output: str) -> bool:
    return SHORT in output and RENDERS not in output


def test_a_converge_with_nothing_to_change_ends_after_the_smoke_check(stack: Stack):
    converge(stack)  # whatever an earlier test left, this one ends well and records it
    run = stack.playbook("site.yml", timeout=600)
    output = said(run)
    assert short(output), f"expected the short converge:\n{run.output[-3000:]}"
    assert "Check that the site renders its home page through nginx" in output
    assert run.changed == 0, run.output[-3000:]
    record = stack.project_dir / "converged.json"
    assert oct(record.stat().st_mode & 0o777) == "0o600"


def test_a_hand_edited_file_is_rendered_again(stack: Stack):
    converge(stack)
    conf = stack.project_dir / "nginx" / "nginx.conf"
    original = conf.read_text()
    conf.write_text(original + "# edited by hand\n")
    try:
        output = converge(stack)
        assert not short(output), "an edited nginx.conf must send the converge the whole way"
        assert "nginx.conf changed since the last converge" in output
        assert conf.read_text() == original
        assert stack.get("/").status_code == 200
    finally:
        if conf.read_text() != original:
            conf.write_text(original)
    assert short(converge(stack))


def test_a_stopped_service_is_started_again(stack: Stack):
    converge(stack)
    asgi = stack.services(r"asgi\d+")[-1]
    stack.compose("stop", asgi.service)
    assert asgi.service not in {c.service for c in stack.services(r"asgi\d+")}
    output = converge(stack)
    assert not short(output), "a stopped service must send the converge the whole way"
    assert asgi.service in {c.service for c in stack.services(r"asgi\d+")}
    assert short(converge(stack))
