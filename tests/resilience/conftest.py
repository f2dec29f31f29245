"""Fixtures of the resilience suite. It runs against a deployed stack described by the same
E2E_* variables as tests/e2e (see tests/e2e/conftest.py) and shares that suite's helpers module
(the Stack, wait_until) and the chat client of tests/chatclient.py, found through pytest.ini's
pythonpath.

  E2E_DISRUPTIVE=1                      allow the tests that kill, restart or redeploy services
  DJCHAT_RESILIENCE_ENGINE_RESTART=1    also restart the Docker engine itself (CI only: every
                                        other stack on the machine goes down with it)
"""

from __future__ import annotations

import os

import pytest

from helpers import Stack, unique


@pytest.fixture(scope="session")
def stack() -> Stack:
    stack = Stack.from_environment()
    stack.wait_ready(timeout=120)
    return stack


@pytest.fixture
def room() -> str:
    return unique("res")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    disruptive = Stack.from_environment().disruptive
    engine = os.environ.get("DJCHAT_RESILIENCE_ENGINE_RESTART", "") in ("1", "true", "yes")
    # The engine restart comes last: after the redeploys, rollbacks and nginx reloads, which is
    # when a reboot finds out whether the stack comes back (a container signalled with
    # `docker kill` is not restarted by the engine). Everything else keeps file order, so the
    # hostile clients run right after the faults' Redis restart, on the pools it left behind.
    items.sort(key=lambda item: "engine_restart" in item.keywords)
    for item in items:
        if "disruptive" in item.keywords and not disruptive:
            item.add_marker(pytest.mark.skip(reason="disruptive: set E2E_DISRUPTIVE=1"))
        if "engine_restart" in item.keywords and not engine:
            item.add_marker(
                pytest.mark.skip(
                    reason="restarts dockerd: set DJCHAT_RESILIENCE_ENGINE_RESTART=1 "
                    "(only where no other stack shares the engine, e.g. CI)"
                )
            )
