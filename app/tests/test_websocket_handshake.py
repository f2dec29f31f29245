"""Who may open a socket: Origin, room, nick, `since`, accounts and the anonymous-chat switch."""

import logging

import pytest
from channels.db import database_sync_to_async

from chat.models import Message
from tests.support import ALLOWED_ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)


async def test_handshake_without_origin_is_refused_and_logged(chat, room, caplog):
    caplog.set_level(logging.WARNING, logger="djchat.origin")

    sock = await chat.open(room, "alice", origin=None)

    assert not sock.accepted
    assert "no Origin header" in caplog.text


async def test_handshake_from_a_foreign_origin_is_refused_and_logged(chat, room, caplog):
    caplog.set_level(logging.WARNING, logger="djchat.origin")

    sock = await chat.open(room, "alice", origin="https://evil.example")

    assert not sock.accepted
    assert "Origin 'https://evil.example' is not allowed: not this site (http://localhost)" in (
        caplog.text
    )


FORGED = "%0a2026-12-02 06:00:00,000 INFO chat.consumers [1] admin logged in%0d"


@pytest.mark.parametrize("origin", [None, ALLOWED_ORIGIN], ids=["origin-check", "admission"])
async def test_a_refused_path_cannot_forge_log_lines(chat, caplog, origin):
    """The path is logged escaped: percent-decoded, a %0a in it would start a line of its own."""
    caplog.set_level(logging.INFO)

    sock = await chat.open("x", path=f"/ws/chat/bad{FORGED}/?nick=alice", origin=origin)

    assert not sock.accepted
    refusals = [r.getMessage() for r in caplog.records if "Refused" in r.getMessage()]
    assert refusals, caplog.text
    assert all("\n" not in line and "\r" not in line for line in refusals), refusals
    assert all("admin logged in" in line for line in refusals)


@pytest.mark.parametrize(
    ("host", "origin", "forwarded_proto"),
    [
        ("chat.example.com:8443", "https://chat.example.com:8443", b"https"),
        ("chat.example.com", "https://chat.example.com", b"https"),
        ("chat.example.com:8080", "http://chat.example.com:8080", b"http"),
        ("CHAT.example.com", "http://chat.EXAMPLE.com", None),
    ],
)
async def test_a_page_of_the_site_itself_may_open_a_socket(
    chat, room, settings, host, origin, forwarded_proto
):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proto = () if forwarded_proto is None else ((b"x-forwarded-proto", forwarded_proto),)

    sock = await chat.open(room, "alice", origin=origin, host=host, extra_headers=proto)

    assert sock.accepted


@pytest.mark.parametrize(
    ("host", "origin", "forwarded_proto"),
    [
        # Another port of the same host: another site (a dev server on :3000, say).
        ("chat.example.com:8080", "http://chat.example.com:3000", b"http"),
        # Another scheme: a plain-HTTP page of a site that is served over https.
        ("chat.example.com", "http://chat.example.com", b"https"),
        ("chat.example.com", "https://chat.example.com", b"http"),
        # localhost is not implicitly trusted.
        ("chat.example.com", "http://localhost", b"http"),
        # A Host outside ALLOWED_HOSTS is no site of ours, whatever the Origin says.
        ("evil.example", "http://evil.example", b"http"),
    ],
)
async def test_an_origin_of_another_scheme_port_or_host_is_refused(
    chat, room, settings, caplog, host, origin, forwarded_proto
):
    caplog.set_level(logging.WARNING, logger="djchat.origin")
    settings.ALLOWED_HOSTS = ["chat.example.com", "localhost"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    sock = await chat.open(
        room,
        "alice",
        origin=origin,
        host=host,
        extra_headers=((b"x-forwarded-proto", forwarded_proto),),
    )

    assert not sock.accepted
    assert f"Origin {origin.lower()!r} is not allowed" in caplog.text


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("https://chat.example.com", True),
        ("https://eu.chat.example.com", True),
        ("http://eu.chat.example.com", False),
        ("https://chat.example.com.evil.example", False),
    ],
)
async def test_csrf_trusted_origins_may_open_sockets(chat, room, settings, origin, accepted):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.chat.example.com"]

    sock = await chat.open(room, "alice", origin=origin)

    assert sock.accepted is accepted


@pytest.mark.parametrize(
    "bad_room", ["General", "under_score", "dot.ted", "x" * 51, "sp%20ace", "%C3%A9"]
)
async def test_handshake_for_an_invalid_room_name_is_refused(chat, bad_room, caplog):
    caplog.set_level(logging.INFO, logger="chat.consumers")

    sock = await chat.open("", path=f"/ws/chat/{bad_room}/?nick=alice")

    assert not sock.accepted
    assert "does not match" in caplog.text


@pytest.mark.parametrize("path", ["/ws/nothing/", "/ws/chat/a/b/", "/ws/chat/"])
async def test_handshake_on_a_path_outside_the_chat_route_is_refused(chat, path):
    sock = await chat.open("", path=f"{path}?nick=alice")

    assert not sock.accepted


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("", id="no-nick"),
        pytest.param("nick=", id="empty"),
        pytest.param("nick=%20%20%20", id="blank"),
        pytest.param("nick=" + "x" * 33, id="33-characters"),
        pytest.param("nick=tab%09in", id="control-character"),
        pytest.param("nick=line%0Abreak", id="newline"),
    ],
)
async def test_handshake_with_an_invalid_nick_is_refused(chat, room, query):
    sock = await chat.open(room, path=f"/ws/chat/{room}/?{query}")

    assert not sock.accepted


async def test_nick_of_32_printable_characters_with_spaces_and_unicode_is_accepted(chat, room):
    nick = "Zoë the 🐍 " + "x" * 22
    assert len(nick) == 32

    sock = await chat.join(room, nick)

    assert (await sock.say("hi"))["nick"] == nick


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "١٢", "9223372036854775808", "1" * 5000])
async def test_handshake_with_a_since_that_is_not_a_message_id_is_refused(chat, room, since):
    sock = await chat.open(room, path=f"/ws/chat/{room}/?nick=alice&since={since}")

    assert not sock.accepted


@pytest.mark.parametrize("nick", ["Alice", "alice", "ALICE"])
async def test_anonymous_nick_equal_to_a_username_is_refused(chat, room, user, nick):
    sock = await chat.open(room, nick)

    assert not sock.accepted


LOOK_ALIKES = {
    "fullwidth": "\uff41\uff4c\uff49\uff43\uff45",  # alice in fullwidth letters
    "accented": "Al\u00efce",  # Alice with a diaeresis on the i
    "combining-accent": "Alice\u0301",
    "cyrillic-a": "\u0410lice",  # Alice with a Cyrillic capital A
}


@pytest.mark.parametrize("nick", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
async def test_anonymous_nick_that_looks_like_a_username_is_refused(chat, room, user, nick):
    sock = await chat.open(room, nick)

    assert not sock.accepted


@pytest.mark.parametrize(
    "nick",
    ["b\u043eb", "\u0440ay\u0440al"],  # bob with a Cyrillic o, paypal with Cyrillic p
    ids=["cyrillic-o", "cyrillic-p"],
)
async def test_anonymous_nick_mixing_alphabets_is_refused(chat, room, nick):
    sock = await chat.open(room, nick)

    assert not sock.accepted


@pytest.mark.parametrize(
    "nick",
    ["\u00c9lodie", "\u0411\u043e\u0440\u0438\u0441", "\u5c71\u7530\u305f\u308d\u3046", "amy-2"],
    ids=["latin-accents", "cyrillic", "kanji-and-kana", "digits-and-hyphen"],
)
async def test_nicks_in_one_alphabet_are_welcome(chat, room, nick):
    sock = await chat.join(room, nick)

    assert sock.history["type"] == "history"


async def test_logged_in_socket_chats_under_its_username_and_ignores_nick(
    chat, room, user, session_cookie
):
    sock = await chat.join(room, "someone-else", cookie=session_cookie)

    echoed = await sock.say("signed message")

    assert echoed["nick"] == "Alice"
    assert echoed["account"] is True
    stored = await database_sync_to_async(Message.objects.get)(room__name=room, seq=echoed["id"])
    assert stored.author_id == user.pk


async def test_logged_in_socket_needs_no_nick(chat, room, user, session_cookie):
    sock = await chat.join(room, cookie=session_cookie)

    assert await sock.receive_type("presence") == {"type": "presence", "online": ["Alice"]}


async def test_anonymous_socket_is_refused_when_anonymous_chat_is_off(chat, room, settings):
    settings.CHAT_ALLOW_ANONYMOUS = False

    sock = await chat.open(room, "alice")

    assert not sock.accepted


async def test_logged_in_socket_is_accepted_when_anonymous_chat_is_off(
    chat, room, settings, session_cookie
):
    settings.CHAT_ALLOW_ANONYMOUS = False

    sock = await chat.join(room, cookie=session_cookie)

    assert sock.history["type"] == "history"


async def test_a_tampered_session_cookie_is_treated_as_anonymous(chat, room, user):
    sock = await chat.join(room, "visitor", cookie="sessionid=not-a-real-session")

    assert (await sock.say("hi"))["nick"] == "visitor"


async def test_a_visitors_message_says_its_nick_is_no_account(chat, room):
    sock = await chat.join(room, "visitor")

    echoed = await sock.say("anonymous message")

    assert echoed["account"] is False
