"""A real browser: two headless Chromium pages on the room page exchange a message through nginx,
using the app's own reusable Playwright helper (app/tests/browser.py)."""

from __future__ import annotations

import pytest

from helpers import Stack
from tests import browser  # app/tests/browser.py, the app's own helper (pytest.ini's pythonpath)


def test_two_browser_pages_exchange_a_message(
    stack: Stack, room: str, monkeypatch: pytest.MonkeyPatch
):
    if stack.tls:
        # The scenario's certificate is self-signed; test_settings.py checks that it is the one
        # the role installed. Chromium is told to accept it, nothing else about it changes.
        monkeypatch.setattr(
            browser, "CHROMIUM_ARGS", [*browser.CHROMIUM_ARGS, "--ignore-certificate-errors"]
        )
    browser.exchange_message_in_two_pages(stack.base_url, room)
