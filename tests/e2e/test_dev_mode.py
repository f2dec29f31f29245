"""Dev mode (djchat_dev_mode, molecule/dev): with the source mounted over /app the site still
serves its pages and assets, and an edited template or view is served without a converge.

Skipped unless E2E_DEV_SOURCE names the source directory the stack mounts (the shared verify sets
it when the scenario deploys dev mode). The tests edit files there and put them back afterwards.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from helpers import Stack, unique, wait_until

DEV_SOURCE = os.environ.get("E2E_DEV_SOURCE", "")

pytestmark = [
    pytest.mark.skipif(not DEV_SOURCE, reason="not a dev-mode stack: set E2E_DEV_SOURCE"),
    pytest.mark.disruptive,  # edits the code the stack runs (and restarts its workers)
]

# gunicorn polls for changes every second, then a new worker imports Django again.
RELOAD_TIMEOUT = 30.0
# Requests in a row that must agree before an edit counts as served: each may reach any gunicorn
# worker, and every one of them must have restarted (a stale worker is missed 1 time in 2**10).
AGREEING_REQUESTS = 10
STYLESHEET = re.compile(r'<link rel="stylesheet" href="(/static/[^"]+\.css)"')
HOME_TEMPLATE = "chat/templates/chat/home.html"
VIEWS_MODULE = "chat/views.py"
VIEW_EDIT_HEADER = "X-Dev-Mode-Edit"


def write_in_place(path: Path, text: str) -> None:
    """Replace the file in one rename, as editors do: the reloaders never read half a file (a
    truncated module would stop a worker from booting), and the mode stays what it was, readable
    by the container's user."""
    mode = path.stat().st_mode & 0o7777
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def every_home_page(check: Callable[[requests.Response], bool], stack: Stack) -> bool:
    """Whether AGREEING_REQUESTS requests in a row for / all answer 200 and pass `check`."""
    for _ in range(AGREEING_REQUESTS):
        page = stack.get("/")
        if page.status_code != 200 or not check(page):
            return False
    return True


class SourceEditor:
    """Edits files of the dev source, adding `marker`; restore() puts every edited file back and
    waits until the home page is served without the marker."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.marker = unique("dev-edit")
        self.originals: dict[Path, str] = {}

    def change(self, relative: str, change: Callable[[str], str]) -> None:
        path = Path(DEV_SOURCE) / relative
        text = path.read_text(encoding="utf-8")
        self.originals.setdefault(path, text)
        write_in_place(path, change(text))

    def shows_marker(self, page: requests.Response) -> bool:
        return self.marker in page.text or self.marker in page.headers.values()

    def restore(self) -> None:
        for path, text in self.originals.items():
            write_in_place(path, text)
        if self.originals:
            wait_until(
                lambda: every_home_page(lambda page: not self.shows_marker(page), self.stack),
                timeout=RELOAD_TIMEOUT,
                what=f"/ to be served without {self.marker!r} from the restored source "
                f"{self.stack.logs_hint('wsgi')}",
            )


@pytest.fixture
def editor(stack: Stack) -> Iterator[SourceEditor]:
    editor = SourceEditor(stack)
    try:
        yield editor
    finally:
        editor.restore()


def test_home_page_and_its_stylesheet_are_served(stack: Stack):
    # The manifest the page's asset names come from is collected outside /app, so the mounted
    # source cannot hide it ("Missing staticfiles manifest entry" made every page a 500).
    page = stack.get("/")
    assert page.status_code == 200, (
        f"/ answered {page.status_code}, expected 200: {page.text[:300]!r} "
        f"{stack.logs_hint('wsgi')}"
    )
    stylesheet = STYLESHEET.search(page.text)
    assert stylesheet, f"/ links no /static/ stylesheet: {page.text[:500]!r}"
    asset = stack.get(stylesheet.group(1))
    assert asset.status_code == 200, (
        f"{stylesheet.group(1)} answered {asset.status_code}, expected 200 "
        f"{stack.logs_hint('static')}"
    )


def test_an_edited_template_is_served_without_a_converge(stack: Stack, editor: SourceEditor):
    def add_marker(text: str) -> str:
        assert "{% endblock %}" in text, f"{HOME_TEMPLATE} has no block to add the marker to"
        head, _, tail = text.rpartition("{% endblock %}")
        return f'{head}<p class="hint">{editor.marker}</p>\n{{% endblock %}}{tail}'

    editor.change(HOME_TEMPLATE, add_marker)

    wait_until(
        lambda: every_home_page(lambda page: editor.marker in page.text, stack),
        timeout=RELOAD_TIMEOUT,
        what=f"/ to show {editor.marker!r} after {HOME_TEMPLATE} was edited "
        f"{stack.logs_hint('wsgi')}",
    )


def test_an_edited_view_is_served_without_a_converge(stack: Stack, editor: SourceEditor):
    # The home view wrapped at the end of its module, so the edit does not depend on its body.
    wrapper = f"""

_home_before_the_edit = home


def home(request):
    response = _home_before_the_edit(request)
    response["{VIEW_EDIT_HEADER}"] = "{editor.marker}"
    return response
"""
    editor.change(VIEWS_MODULE, lambda text: text + wrapper)

    wait_until(
        lambda: every_home_page(
            lambda page: page.headers.get(VIEW_EDIT_HEADER) == editor.marker, stack
        ),
        timeout=RELOAD_TIMEOUT,
        what=f"/ to carry {VIEW_EDIT_HEADER}: {editor.marker} after {VIEWS_MODULE} was edited "
        f"{stack.logs_hint('wsgi')}",
    )
