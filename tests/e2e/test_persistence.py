"""Messages are stored, not just relayed: a client resumes with `since`, and history survives a
restart of every container and a re-run of the playbook."""

from __future__ import annotations

import subprocess
import time

import pytest

from helpers import Stack, unique


def test_since_resume_returns_the_messages_missed_while_away(stack: Stack, room: str):
    with stack.chat(room, nick="leaver") as leaver:
        last_seen = leaver.say(unique("before"))["id"]
    with stack.chat(room, nick="stayer") as stayer:
        missed = [stayer.say(unique(f"missed{n}")) for n in range(3)]

    with stack.chat(room, nick="leaver", since=last_seen) as resumed:
        assert resumed.history_messages == missed, (
            f"resume with since={last_seen} must replay exactly the missed messages, in order"
        )
    assert stack.get(f"/api/rooms/{room}/messages?since={last_seen}").json() == missed


def test_history_frame_holds_recent_messages_oldest_first(stack: Stack, room: str):
    with stack.chat(room, nick="author") as author:
        sent = [author.say(unique(f"m{n}")) for n in range(3)]
    with stack.chat(room, nick="reader") as reader:
        assert reader.history_messages == sent


def assert_history_kept(stack: Stack, room: str, message: dict) -> None:
    with stack.chat(room, nick="returner") as client:
        assert message in client.history_messages, (
            f"{message} is gone from the history after the restart {stack.logs_hint()}"
        )
    assert message in stack.get(f"/api/rooms/{room}/messages").json()


@pytest.mark.disruptive
def test_history_survives_a_compose_restart(stack: Stack, room: str):
    with stack.chat(room, nick="before") as client:
        message = client.say(unique("kept across restart"))
    started = time.monotonic()
    stack.compose("restart")
    stack.wait_ready(timeout=180)
    print(f"stack answered again {time.monotonic() - started:.1f} s after `compose restart`")
    assert_history_kept(stack, room, message)


@pytest.mark.disruptive
@pytest.mark.timeout(1300)  # a converge may rebuild the app image
def test_history_survives_a_reconverge(stack: Stack, room: str):
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    with stack.chat(room, nick="before") as client:
        message = client.say(unique("kept across converge"))
    result = subprocess.run(
        stack.reconverge_command, capture_output=True, text=True, timeout=1200, check=False
    )
    assert result.returncode == 0, (
        f"re-converge `{' '.join(stack.reconverge_command)}` failed:\n"
        f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    )
    stack.wait_ready(timeout=180)
    assert_history_kept(stack, room, message)
