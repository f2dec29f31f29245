"""A real browser: two headless Chromium pages on the room page exchange a message through nginx,
using the app's own reusable Playwright helper (app/tests/browser.py)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from helpers import REPO_ROOT, Stack

APP_DIR = REPO_ROOT / "app"


def app_browser_helper() -> ModuleType:
    """Import app/tests/browser.py as the app's test suite does (with app/ on sys.path)."""
    path = APP_DIR / "tests" / "browser.py"
    if not path.is_file():
        pytest.fail(f"{path} is missing: the app's reusable browser helper")
    if str(APP_DIR) not in sys.path:
        sys.path.insert(0, str(APP_DIR))
    spec = importlib.util.spec_from_file_location("djchat_app_tests_browser", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_browser_pages_exchange_a_message(
    stack: Stack, room: str, monkeypatch: pytest.MonkeyPatch
):
    browser = app_browser_helper()
    if stack.tls:
        # The scenario's certificate is self-signed; test_settings.py checks that it is the one
        # the role installed. Chromium is told to accept it, nothing else about it changes.
        monkeypatch.setattr(
            browser, "CHROMIUM_ARGS", [*browser.CHROMIUM_ARGS, "--ignore-certificate-errors"]
        )
    browser.exchange_message_in_two_pages(stack.base_url, room)
