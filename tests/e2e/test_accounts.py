"""Accounts over HTTP (gunicorn) are honoured on the WebSocket (daphne): both process types share
the database and the session store, through nginx, with Django's CSRF protection on."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from helpers import Stack, logged_in_session, sign_up, unique

pytestmark = pytest.mark.disruptive  # creates accounts (POST requests)


@pytest.fixture(scope="module")
def account(stack: Stack) -> tuple[str, str]:
    return sign_up(stack)


def test_user_logged_in_over_http_chats_under_their_name_on_the_websocket(
    stack: Stack, account: tuple[str, str], room: str
):
    username, password = account
    session = logged_in_session(stack, username, password)
    # The nick parameter is ignored for a logged-in user: the session decides.
    with session, stack.chat(room, nick="impostor", cookies=session.cookies) as client:
        text = unique("signed")
        message = client.say(text)
        assert message["nick"] == username, (
            f"daphne did not recognise the session made by gunicorn: {message}"
        )
        client.wait_for_presence([username])
    listed = stack.get(f"/api/rooms/{room}/messages").json()
    assert [(m["nick"], m["text"]) for m in listed] == [(username, text)]


def test_anonymous_nick_cannot_take_a_username(stack: Stack, account: tuple[str, str], room: str):
    username, _ = account
    with pytest.raises(InvalidStatus) as refused:
        stack.chat(room, nick=username)
    assert refused.value.response.status_code == 403


def test_logout_over_http_ends_the_session_for_the_websocket(
    stack: Stack, account: tuple[str, str], room: str
):
    username, password = account
    with logged_in_session(stack, username, password) as session:
        cookies = session.cookies.copy()
        with stack.chat(room, cookies=cookies) as client:
            assert client.say("before logout")["nick"] == username
        token = session.cookies.get("csrftoken") or next(
            cookie.value for cookie in session.cookies if "csrf" in cookie.name
        )
        response = session.post(
            stack.url("/accounts/logout/"),
            data={"csrfmiddlewaretoken": token},
            headers={"Referer": stack.url("/"), "Origin": stack.origin},
            allow_redirects=False,
            timeout=15,
        )
        assert response.status_code in (200, 302), f"logout answered {response.status_code}"
    # The old cookie names a deleted session: daphne treats the client as anonymous, and an
    # anonymous client without a nick is refused.
    with pytest.raises(InvalidStatus):
        stack.chat(room, cookies=cookies)
