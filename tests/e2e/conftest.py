"""Fixtures of the end-to-end suite. The stack under test is described by environment variables
(molecule/shared/verify.yml sets them from the scenario's settings):

  E2E_BASE_URL            the public URL, e.g. http://127.0.0.1:18080 (https://... with TLS)
  E2E_HTTP_URL            the plain-HTTP URL when TLS is on (redirect test)
  E2E_COMPOSE_PROJECT     compose project name, E2E_PROJECT_DIR its directory on this host
  E2E_EXPECT              JSON: the settings the scenario deployed (replicas, workers, TLS, ports)
  E2E_DISRUPTIVE=1        allow tests that restart or re-converge the stack or create accounts
  E2E_RECONVERGE_COMMAND  the converge command line, for the "survives a re-converge" test
  E2E_DEV_SOURCE          in dev mode, the source directory the stack mounts (test_dev_mode.py)
"""

from __future__ import annotations

import pytest

from helpers import Stack, unique


@pytest.fixture(scope="session")
def stack() -> Stack:
    stack = Stack.from_environment()
    # HTTP only: a broken WebSocket route must fail the WebSocket tests, each with its reason,
    # not every test at setup.
    stack.wait_ready(timeout=60, websocket=False)
    return stack


@pytest.fixture
def room() -> str:
    return unique("e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if Stack.from_environment().disruptive:
        return
    skip = pytest.mark.skip(reason="disruptive: set E2E_DISRUPTIVE=1 (molecule verify does)")
    for item in items:
        if "disruptive" in item.keywords:
            item.add_marker(skip)
