"""nginx routes HTTP to gunicorn (wsgi) and /ws/ to the asgi replicas (uvicorn or daphne), as the
app itself reports: X-Served-By on HTTP responses, served_by in the WebSocket history frame."""

from __future__ import annotations

import re

import pytest
from websockets.exceptions import InvalidStatus

from helpers import Stack, unique

SERVED_BY = re.compile(r"^(wsgi|asgi)/(\S+)$")


def served_by(response) -> tuple[str, str]:
    header = response.headers.get("X-Served-By", "")
    match = SERVED_BY.match(header)
    assert match, f"{response.url}: X-Served-By {header!r} is not <wsgi|asgi>/<hostname>"
    return match.group(1), match.group(2)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/r/{room}/",
        "/api/rooms/{room}/messages",
        "/api/rooms/{room}/messages?since=0",
        "/accounts/login/",
        "/accounts/signup/",
    ],
)
def test_pages_and_api_are_answered_by_gunicorn(stack: Stack, room: str, path: str):
    response = stack.get(path.format(room=room))
    assert response.status_code == 200, f"{response.url}: {response.status_code}"
    process, host = served_by(response)
    wsgi_hosts = {container.hostname for container in stack.services("wsgi")}
    assert (process, host in wsgi_hosts) == ("wsgi", True), (
        f"{response.url} was served by {process}/{host}; expected gunicorn in one of the wsgi "
        f"containers {sorted(wsgi_hosts)} {stack.logs_hint('nginx')}"
    )


def test_api_answers_json_message_lists(stack: Stack, room: str):
    response = stack.get(f"/api/rooms/{room}/messages")
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == []


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_answer_through_nginx(stack: Stack, path: str):
    response = stack.get(path)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    body = response.json()
    assert body["status"] == "ok", body
    if path == "/readyz":
        assert body["checks"] == {"database": "ok", "redis": "ok"}, body
    else:
        assert body["process"] == served_by(response)[0], body


def test_websocket_is_answered_by_an_asgi_replica(stack: Stack, room: str):
    asgi_hosts = stack.asgi_hostnames()
    assert asgi_hosts, f"no running asgi containers in project {stack.project}"
    with stack.chat(room, nick="router") as client:
        assert client.history["room"] == room
        assert client.history_messages == []
        assert client.served_by in asgi_hosts, (
            f"history frame served_by {client.served_by!r} is none of the asgi containers "
            f"{sorted(asgi_hosts)} {stack.logs_hint()}"
        )


def test_message_sent_over_websocket_is_in_the_http_api(stack: Stack, room: str):
    """daphne stores, gunicorn reads: both process types use the same database."""
    text = unique("stored")
    with stack.chat(room, nick="writer") as client:
        message = client.say(text)
    assert message["nick"] == "writer"
    assert message["room"] == room
    listed = stack.get(f"/api/rooms/{room}/messages").json()
    assert [m["id"] for m in listed if m["text"] == text] == [message["id"]], listed


def test_ping_is_answered_with_pong(stack: Stack, room: str):
    with stack.chat(room, nick="pinger") as client:
        client.send({"type": "ping"})
        client.wait_for(lambda frame: frame["type"] == "pong", what="pong")


def test_websocket_from_a_foreign_origin_is_refused(stack: Stack, room: str):
    with pytest.raises(InvalidStatus) as refused:
        stack.chat(room, nick="intruder", origin="http://evil.example")
    assert refused.value.response.status_code == 403
