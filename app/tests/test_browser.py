"""The room page in headless Chromium against a real daphne process (tests/browser.py)."""

import os
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, exchange_message_in_two_pages


@pytest.fixture
def chromium():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must not pass by skipping the browser
        pytest.skip(message)


def test_two_pages_exchange_a_message_shown_as_text_and_see_each_other_online(
    chromium, stack, room, tmp_path
):
    try:
        exchange_message_in_two_pages(stack.asgi[0].base_url, room, screenshot_dir=tmp_path)
    except AssertionError as error:
        raise AssertionError(f"{error}\nscreenshots: {tmp_path}; {stack.describe_logs()}") from None
