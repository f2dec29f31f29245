"""The room page in a real browser: Debian's Chromium, headless, driven by Playwright's sync API.

Reusable on purpose: plain functions, no Django and nothing from the test session, so a check of a
deployed stack can import this file and call

    exchange_message_in_two_pages("http://127.0.0.1:8080", "some-room")

Only Playwright and the standard library are needed; the browser is /usr/bin/chromium (Playwright's
own browser downloads are never used).
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container has no user namespaces for the sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A markup payload: the page must show it as text, never as a bold "x".
MARKUP_PAYLOAD = "<b>x</b> & <i>friends</i>"


def launch(profile_dir: str, playwright) -> BrowserContext:
    """Headless Chromium with a fresh profile (user-data dir) of its own."""
    return playwright.chromium.launch_persistent_context(
        profile_dir,
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
    )


def open_room(context: BrowserContext, base_url: str, room: str, nick: str) -> Page:
    """Follow a link that suggests `nick`; the page only fills in the form, the visitor joins."""
    page = context.new_page()
    page.goto(f"{base_url.rstrip('/')}/r/{quote(room)}/?nick={quote(nick)}")
    expect(page.locator("#nick-input"), describe(page)).to_have_value(nick)
    expect(page.locator("#connection-state"), describe(page)).not_to_have_attribute(
        "data-state", "online"
    )
    page.locator("#nick-input").press("Enter")
    return page


def describe(page: Page) -> str:
    """What the page shows, for failure messages."""
    try:
        return (
            f"{page.url}: state={page.locator('#connection-state').inner_text()!r} "
            f"notice={page.locator('#notice').inner_text()!r} "
            f"online={page.locator('#online li').all_inner_texts()} "
            f"messages={page.locator('#messages .text').all_inner_texts()[-5:]}"
        )
    except Exception as error:  # the page itself may be what broke
        return f"{page.url}: cannot be read ({error})"


def exchange_message_in_two_pages(
    base_url: str,
    room: str,
    *,
    timeout_ms: int = 15_000,
    screenshot_dir: str | Path | None = None,
) -> None:
    """Two visitors open the same room; both see each other online, and a message with markup sent
    by one appears, as literal text, on the other's page. Raises AssertionError otherwise."""
    suffix = secrets.token_hex(3)  # nicks nobody in a live room has, nor any account
    nicks = (f"amy-{suffix}", f"ben-{suffix}")
    payload = f"{MARKUP_PAYLOAD} {suffix}"

    # Two visitors: two browser profiles, so neither recalls the other's nick.
    with (
        tempfile.TemporaryDirectory(prefix="djchat-chromium-") as amy_profile,
        tempfile.TemporaryDirectory(prefix="djchat-chromium-") as ben_profile,
        sync_playwright() as p,
    ):
        contexts = [launch(amy_profile, p), launch(ben_profile, p)]
        for context in contexts:
            context.set_default_timeout(timeout_ms)
        pages: list[Page] = []
        try:
            pages = [
                open_room(context, base_url, room, nick)
                for context, nick in zip(contexts, nicks, strict=True)
            ]
            amy, ben = pages

            for page in pages:
                expect(page.locator("#connection-state"), describe(page)).to_have_attribute(
                    "data-state", "online"
                )
                online = page.locator("#online li")
                for nick in nicks:
                    expect(online.filter(has_text=nick), describe(page)).to_have_count(1)

            amy.locator("#message-input").fill(payload)
            amy.locator("#message-input").press("Enter")

            received = ben.locator("#messages .message").filter(has_text=suffix)
            expect(received, describe(ben)).to_have_count(1)
            expect(received.locator(".nick"), describe(ben)).to_have_text(nicks[0])
            expect(received.locator(".text"), describe(ben)).to_have_text(payload)
            assert received.locator("b, i").count() == 0, (
                f"the message was rendered as HTML instead of text: {received.inner_html()}"
            )
            echoed = amy.locator("#messages .message").filter(has_text=suffix)
            expect(echoed, describe(amy)).to_have_count(1)
        except AssertionError:
            if screenshot_dir is not None:
                for page, nick in zip(pages, nicks, strict=False):
                    page.screenshot(path=str(Path(screenshot_dir) / f"{nick}.png"), full_page=True)
            raise
        finally:
            for context in contexts:
                context.close()
