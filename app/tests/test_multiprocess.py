"""The app as separate processes: two asgi processes and gunicorn sharing a database and Redis,
under each asgi server (djchat.asgi_server: uvicorn, daphne).

This is what the deployment runs behind nginx; a message or a login must cross process boundaries.
"""

import contextlib
import json
import os
import socket
import weakref
from pathlib import Path

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from chat.protocol import max_frame_size
from djchat import asgi_server
from djchat.bounds import INTEGERS
from tests import servers

HOSTNAME = socket.gethostname()


@pytest.fixture(scope="module", params=asgi_server.SERVERS)
def stack(request, redis_server, tmp_path_factory):
    """A stack of this module's own: gunicorn and two asgi processes of one server on one Redis."""
    workdir = tmp_path_factory.mktemp(f"stack-{request.param}")
    with servers.running_stack(redis_server, workdir, server=request.param) as running:
        yield running


def open_socket(server, room: str, nick: str | None = None, *, since=None, cookie=None):
    query = "&".join(
        f"{name}={value}" for name, value in (("nick", nick), ("since", since)) if value is not None
    )
    headers = {"Cookie": cookie} if cookie else None
    return connect(
        f"ws://127.0.0.1:{server.port}/ws/chat/{room}/?{query}",
        origin=server.base_url,
        additional_headers=headers,
        open_timeout=10,
    )


def receive(ws, frame_type: str, timeout: float = 10) -> dict:
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        if frame["type"] == frame_type:
            return frame


def drain(ws, timeout: float = 10) -> None:
    """Read until the connection ends (it raises ConnectionClosed then)."""
    while True:
        ws.recv(timeout=timeout)


# What each socket was told is online: its presence frame, with the changes since applied.
_online: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def presence_becomes(ws, online: list[str], timeout: float = 10) -> None:
    while _online.get(ws) != set(online):
        frame = json.loads(ws.recv(timeout=timeout))
        if frame["type"] == "presence":
            _online[ws] = set(frame["online"])
        elif frame["type"] == "presence_change" and ws in _online:
            _online[ws] = (_online[ws] | set(frame["joined"])) - set(frame["left"])


def test_members_on_different_asgi_processes_share_messages_and_presence(stack, room):
    first, second = stack.asgi
    with open_socket(first, room, "amy") as amy, open_socket(second, room, "ben") as ben:
        presence_becomes(amy, ["amy", "ben"])
        presence_becomes(ben, ["amy", "ben"])

        amy.send(json.dumps({"type": "message", "text": "across processes"}))
        arrived = receive(ben, "message")

    assert (arrived["nick"], arrived["text"]) == ("amy", "across processes"), stack.describe_logs()


def open_files(server) -> set[str]:
    fds = Path(f"/proc/{server.process.pid}/fd")
    return {os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()}


def test_an_asgi_process_keeps_one_database_connection_between_messages(stack, room):
    """The launcher's process keeps its connection (djchat.config.database): a connection per
    message cost more CPU than the message."""
    server, database = stack.asgi[0], str(stack.logs / "db.sqlite3")
    with open_socket(server, room, "amy") as amy:
        for text in ("one", "two"):
            amy.send(json.dumps({"type": "message", "text": text}))
            assert receive(amy, "message")["text"] == text
            # The message was stored and committed before it was sent back.
            assert database in open_files(server), f"{database} closed after {text!r}"


def test_a_member_on_another_process_leaving_updates_presence(stack, room):
    first, second = stack.asgi
    with open_socket(first, room, "amy") as amy:
        with open_socket(second, room, "ben"):
            presence_becomes(amy, ["amy", "ben"])
        presence_becomes(amy, ["amy"])


def test_history_written_through_one_process_is_served_by_the_other(stack, room):
    first, second = stack.asgi
    with open_socket(first, room, "amy") as amy:
        amy.send(json.dumps({"type": "message", "text": "remember me"}))
        sent = receive(amy, "message")

    with open_socket(second, room, "ben") as ben:
        history = receive(ben, "history")

    assert history["messages"] == [sent]
    assert requests.get(f"{stack.wsgi.base_url}/api/rooms/{room}/messages", timeout=10).json() == [
        sent
    ]


def test_login_served_by_gunicorn_authenticates_the_websocket_on_the_asgi_server(stack, room):
    browser = requests.Session()
    signup = f"{stack.wsgi.base_url}/accounts/signup/"
    page = browser.get(signup, timeout=10)
    username = f"member-{room[-6:]}"
    response = browser.post(
        signup,
        data={
            "username": username,
            "password1": "a long passphrase 981",
            "password2": "a long passphrase 981",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        headers={"Referer": signup},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text
    assert page.headers["X-Served-By"] == f"wsgi/{HOSTNAME}"
    cookie = f"sessionid={browser.cookies['sessionid']}"

    with open_socket(stack.asgi[1], room, "ignored-nick", cookie=cookie) as ws:
        receive(ws, "history")
        ws.send(json.dumps({"type": "message", "text": "it is me"}))
        echoed = receive(ws, "message")

    assert echoed["nick"] == username


def test_the_asgi_server_refuses_a_foreign_origin_at_the_handshake(stack, room):
    server = stack.asgi[0]
    with pytest.raises(InvalidStatus) as refused:
        connect(
            f"ws://127.0.0.1:{server.port}/ws/chat/{room}/?nick=amy",
            origin="http://evil.example",
            open_timeout=10,
        )

    assert refused.value.response.status_code == 403
    assert "Origin 'http://evil.example' is not allowed" in server.output()


LONGEST_FRAME = max_frame_size(INTEGERS["CHAT_MAX_MESSAGE_LENGTH"].default)


def test_the_longest_frame_a_message_needs_reaches_the_app(stack, room):
    with open_socket(stack.asgi[0], room, "amy") as amy:
        receive(amy, "history")
        amy.send(json.dumps({"type": "message", "text": "x" * LONGEST_FRAME})[:LONGEST_FRAME])

        assert receive(amy, "error")["code"] == "bad_json"  # the app read it (cut, so not JSON)
        amy.send(json.dumps({"type": "message", "text": "é" * 2000}, ensure_ascii=True))
        assert receive(amy, "message")["text"] == "é" * 2000  # 12,000 bytes of escapes


@pytest.mark.parametrize("size", [LONGEST_FRAME + 1, 2 * 1024 * 1024], ids=["just-over", "2-MiB"])
def test_frame_over_the_servers_limit_is_closed_with_1009_and_the_room_goes_on(stack, room, size):
    """The asgi server's frame limit, set from the app's longest message (djchat.asgi_server),
    ends the connection with a close frame the client can read, not a dropped or reset socket,
    also while the client is still sending the rest of a big frame; the other members keep
    chatting."""
    with (
        open_socket(stack.asgi[0], room, "amy") as amy,
        open_socket(stack.asgi[0], room, "ben") as ben,
    ):
        receive(amy, "history")
        with contextlib.suppress(ConnectionClosed):  # the close may come while it sends
            amy.send("x" * size)
        with pytest.raises(ConnectionClosed) as closed:
            drain(amy)

        assert closed.value.rcvd is not None, "the server dropped the socket without a close frame"
        assert closed.value.rcvd.code == 1009
        ben.send(json.dumps({"type": "message", "text": "still here"}))
        assert receive(ben, "message")["text"] == "still here"


@pytest.mark.parametrize(("kind", "process"), [("wsgi", "wsgi"), ("asgi", "asgi")])
def test_each_process_type_answers_health_as_itself(stack, kind, process):
    server = stack.wsgi if kind == "wsgi" else stack.asgi[0]

    health = requests.get(f"{server.base_url}/healthz", timeout=10)
    ready = requests.get(f"{server.base_url}/readyz", timeout=10)

    assert health.json() == {"status": "ok", "process": process, "host": HOSTNAME}
    assert health.headers["X-Served-By"] == f"{process}/{HOSTNAME}"
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
