"""HTTP: health and readiness on both process types, X-Served-By, the JSON API, pages, accounts."""

import re
import socket

import pytest
from channels.testing import HttpCommunicator
from django.core.cache import cache
from django.test import Client

from chat.services.messages import post_message
from chat.views import ROOM_LIST_CACHE_KEY
from djchat import config
from tests.support import asgi_application

pytestmark = pytest.mark.django_db(transaction=True)

HOSTNAME = socket.gethostname()


async def asgi_get(path: str, host: str = "localhost") -> tuple[int, dict, bytes]:
    headers = [(b"host", host.encode())]
    communicator = HttpCommunicator(asgi_application(), "GET", path, headers=headers)
    response = await communicator.get_response(timeout=10)
    headers = {name.decode().lower(): value.decode() for name, value in response["headers"]}
    return response["status"], headers, response["body"]


# --- health ---------------------------------------------------------------------------------


def test_healthz_over_wsgi_names_the_process_type_and_host(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "process": "wsgi", "host": HOSTNAME}
    assert response["X-Served-By"] == f"wsgi/{HOSTNAME}"


async def test_healthz_over_asgi_names_the_process_type_and_host():
    status, headers, body = await asgi_get("/healthz")

    assert status == 200
    assert body == b'{"status": "ok", "process": "asgi", "host": "' + HOSTNAME.encode() + b'"}'
    assert headers["x-served-by"] == f"asgi/{HOSTNAME}"


def test_readyz_over_wsgi_reports_database_and_redis_ok(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_readyz_over_asgi_reports_database_and_redis_ok():
    status, headers, body = await asgi_get("/readyz")

    assert status == 200
    assert b'"checks": {"database": "ok", "redis": "ok"}' in body
    assert headers["x-served-by"] == f"asgi/{HOSTNAME}"


def test_readyz_answers_503_naming_redis_when_redis_is_unreachable(client, settings):
    settings.CACHES = config.redis_cache("redis://127.0.0.1:9/0", None)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "error", "checks": {"database": "ok", "redis": "error"}}


def test_readyz_answers_503_naming_redis_when_the_password_is_wrong(client, settings, redis_server):
    settings.CACHES = config.redis_cache(redis_server.url, "wrong-password")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "error"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_answer_a_probe_whose_host_is_not_allowed(client, settings, path):
    # A container health check addresses the process as 127.0.0.1:8000, not as the site.
    settings.ALLOWED_HOSTS = ["chat.example.com"]

    assert client.get(path, headers={"host": "127.0.0.1:8000"}).status_code == 200
    assert client.get("/", headers={"host": "127.0.0.1:8000"}).status_code == 400


async def test_asgi_health_endpoint_answers_a_probe_whose_host_is_not_allowed(settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]

    status, _, _ = await asgi_get("/healthz", host="127.0.0.1:8001")

    assert status == 200


def test_health_endpoints_are_not_cached(client):
    assert "no-cache" in client.get("/healthz")["Cache-Control"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_are_exempt_from_the_https_redirect(client, settings, path):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get(path).status_code == 200
    assert client.get("/").status_code == 301


# --- X-Served-By ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/r/lobby/", "/accounts/login/", "/no-such-page", "/r/Bad/"])
def test_every_wsgi_response_carries_x_served_by(client, path):
    assert client.get(path)["X-Served-By"] == f"wsgi/{HOSTNAME}"


async def test_asgi_pages_carry_x_served_by_asgi():
    status, headers, _ = await asgi_get("/")

    assert status == 200
    assert headers["x-served-by"] == f"asgi/{HOSTNAME}"


# --- JSON API -------------------------------------------------------------------------------


def test_api_returns_the_latest_messages_as_message_objects(client, room):
    sent = [post_message(room, "alice", f"m{n}") for n in range(3)]

    response = client.get(f"/api/rooms/{room}/messages")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == sent


def test_api_since_returns_only_later_messages(client, room):
    sent = [post_message(room, "alice", f"m{n}") for n in range(5)]

    response = client.get(f"/api/rooms/{room}/messages?since={sent[1]['id']}")

    assert response.json() == sent[2:]


def test_api_since_is_capped_at_the_resume_limit(client, room, settings):
    settings.CHAT_RESUME_LIMIT = 2
    sent = [post_message(room, "alice", f"m{n}") for n in range(5)]

    assert client.get(f"/api/rooms/{room}/messages?since=0").json() == sent[:2]


def test_api_for_an_unknown_room_is_an_empty_list(client, room):
    assert client.get(f"/api/rooms/{room}/messages").json() == []


@pytest.mark.parametrize(
    "since", ["x", "-1", "1.0", "", "9223372036854775808", "1" * 5000, "0" * 20]
)
def test_api_rejects_a_since_that_is_not_a_message_id(client, room, since):
    response = client.get(f"/api/rooms/{room}/messages?since={since}")

    assert response.status_code == 400
    assert "since" in response.json()["error"]


def test_api_accepts_the_largest_message_id(client, room):
    response = client.get(f"/api/rooms/{room}/messages?since={2**63 - 1}")

    assert response.status_code == 200
    assert response.json() == []


def test_api_for_an_invalid_room_name_is_not_found(client):
    assert client.get("/api/rooms/Not_Valid/messages").status_code == 404


def test_api_needs_a_login_when_anonymous_chat_is_off(client, room, settings, user):
    settings.CHAT_ALLOW_ANONYMOUS = False

    assert client.get(f"/api/rooms/{room}/messages").status_code == 403
    client.force_login(user)
    assert client.get(f"/api/rooms/{room}/messages").status_code == 200


# --- pages ----------------------------------------------------------------------------------


def test_home_lists_rooms_with_recent_activity_newest_first(client):
    post_message("quiet-room", "alice", "first")
    post_message("busy-room", "bob", "second")

    page = client.get("/").content.decode()

    assert page.index("#busy-room") < page.index("#quiet-room")


def test_home_serves_the_room_list_from_the_cache_until_it_expires(client, settings):
    settings.CHAT_ROOM_LIST_CACHE_SECONDS = 60
    post_message("early-room", "alice", "first")
    assert "#early-room" in client.get("/").content.decode()

    post_message("late-room", "bob", "second")
    cached = client.get("/").content.decode()
    cache.delete(ROOM_LIST_CACHE_KEY)  # what expiry does after CHAT_ROOM_LIST_CACHE_SECONDS
    fresh = client.get("/").content.decode()

    assert "#late-room" not in cached
    assert fresh.index("#late-room") < fresh.index("#early-room")


def test_home_renders_the_room_list_every_time_with_the_cache_off(client, settings):
    settings.CHAT_ROOM_LIST_CACHE_SECONDS = 0
    post_message("early-room", "alice", "first")
    client.get("/")

    post_message("late-room", "bob", "<b>second</b>")

    assert "#late-room" in client.get("/").content.decode()
    assert cache.get(ROOM_LIST_CACHE_KEY) is None


def test_home_still_lists_rooms_while_the_cache_is_unreachable(client, settings):
    settings.CHAT_ROOM_LIST_CACHE_SECONDS = 60
    # Port 9 (discard) on loopback: nothing listens, so every cache call fails to connect.
    settings.CACHES = config.redis_cache("redis://127.0.0.1:9/0", None)
    post_message("lonely-room", "alice", "first")

    response = client.get("/")

    assert response.status_code == 200
    assert "#lonely-room" in response.content.decode()


def test_open_room_form_redirects_to_the_normalised_room(client):
    response = client.get("/", {"room": "  Book Club "})

    assert response.status_code == 302
    assert response["Location"] == "/r/book-club/"


def test_open_room_form_explains_an_invalid_name(client):
    response = client.get("/", {"room": "no/slashes!"})

    assert response.status_code == 200
    assert "letters, digits and hyphens" in response.content.decode()


def test_room_page_hands_its_configuration_to_the_script_as_json_data(client):
    page = client.get("/r/lobby/").content.decode()

    assert '<script id="chat-config" type="application/json">' in page
    assert '"wsPath": "/ws/chat/lobby/"' in page
    assert '"apiUrl": "/api/rooms/lobby/messages"' in page


def test_room_page_loads_only_hashed_same_origin_assets(client):
    page = client.get("/r/lobby/").content.decode()

    assert re.search(r'src="/static/chat/chat\.[0-9a-f]{12}\.js"', page)
    assert re.search(r'href="/static/chat/chat\.[0-9a-f]{12}\.css"', page)
    assert "http://" not in page
    assert "https://" not in page


def test_pages_send_a_content_security_policy_without_inline_script(client):
    policy = client.get("/r/lobby/")["Content-Security-Policy"]

    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


def test_room_page_for_an_invalid_room_name_is_not_found(client):
    assert client.get("/r/Not_Valid/").status_code == 404


def test_room_page_asks_anonymous_visitors_to_log_in_when_anonymous_chat_is_off(client, settings):
    settings.CHAT_ALLOW_ANONYMOUS = False

    page = client.get("/r/lobby/").content.decode()

    assert "This room is for members" in page
    assert 'id="message-form"' not in page


# --- accounts -------------------------------------------------------------------------------


def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def csrf_token(client: Client, path: str) -> str:
    client.get(path)
    return client.cookies["csrftoken"].value


def test_signup_creates_the_account_logs_in_and_returns_to_next(django_user_model):
    browser = csrf_client()
    token = csrf_token(browser, "/accounts/signup/?next=/r/lobby/")

    response = browser.post(
        "/accounts/signup/",
        {
            "username": "newcomer",
            "password1": "a long passphrase 981",
            "password2": "a long passphrase 981",
            "next": "/r/lobby/",
            "csrfmiddlewaretoken": token,
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/r/lobby/"
    assert django_user_model.objects.filter(username="newcomer").exists()
    assert "Signed in as <strong>newcomer</strong>" in browser.get("/").content.decode()


def test_signup_refuses_a_username_longer_than_a_nick(django_user_model):
    browser = csrf_client()
    token = csrf_token(browser, "/accounts/signup/")

    response = browser.post(
        "/accounts/signup/",
        {
            "username": "x" * 33,
            "password1": "a long passphrase 981",
            "password2": "a long passphrase 981",
            "csrfmiddlewaretoken": token,
        },
    )

    assert response.status_code == 200
    assert not django_user_model.objects.exists()


@pytest.mark.parametrize(
    ("username", "why"),
    [
        ("\u00e9lodie", "looks like one that is taken"),  # Élodie exists
        ("\u00c9LODIE", "already exists"),
        ("\u0415lodie", "mixes"),  # a Cyrillic capital E
    ],
    ids=["accent", "case", "cyrillic-e"],
)
def test_signup_refuses_a_username_that_looks_like_anothers(django_user_model, username, why):
    django_user_model.objects.create_user("\u00c9lodie", password="a long passphrase 981")
    browser = csrf_client()
    token = csrf_token(browser, "/accounts/signup/")

    response = browser.post(
        "/accounts/signup/",
        {
            "username": username,
            "password1": "a long passphrase 981",
            "password2": "a long passphrase 981",
            "csrfmiddlewaretoken": token,
        },
    )

    assert response.status_code == 200
    assert why in response.content.decode()
    assert django_user_model.objects.count() == 1


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("a", "too short"),
        ("short pw 1", "too short"),
        ("password1234", "too common"),
        ("918273645546372819", "entirely numeric"),
        ("newcomer1234!", "too similar to the username"),
    ],
)
def test_signup_refuses_a_weak_password_and_says_why(django_user_model, password, why):
    browser = csrf_client()
    token = csrf_token(browser, "/accounts/signup/")

    response = browser.post(
        "/accounts/signup/",
        {
            "username": "newcomer",
            "password1": password,
            "password2": password,
            "csrfmiddlewaretoken": token,
        },
    )

    assert response.status_code == 200
    assert why in response.content.decode()
    assert not django_user_model.objects.exists()


def test_signup_does_not_redirect_to_another_site():
    browser = csrf_client()
    token = csrf_token(browser, "/accounts/signup/")

    response = browser.post(
        "/accounts/signup/",
        {
            "username": "newcomer",
            "password1": "a long passphrase 981",
            "password2": "a long passphrase 981",
            "next": "https://evil.example/",
            "csrfmiddlewaretoken": token,
        },
    )

    assert response["Location"] == "/"


def test_login_then_logout_with_csrf_protected_forms(user):
    browser = csrf_client()
    token = csrf_token(browser, "/accounts/login/")

    logged_in = browser.post(
        "/accounts/login/",
        {"username": "Alice", "password": "correct horse 42", "csrfmiddlewaretoken": token},
    )
    token = browser.cookies["csrftoken"].value  # rotated at login
    logged_out = browser.post("/accounts/logout/", {"csrfmiddlewaretoken": token})

    assert logged_in.status_code == 302
    assert logged_out.status_code == 302
    assert "Log in" in browser.get("/").content.decode()


def test_login_post_without_csrf_token_is_refused(user):
    response = csrf_client().post(
        "/accounts/login/", {"username": "Alice", "password": "correct horse 42"}
    )

    assert response.status_code == 403


def test_csrf_behind_a_tls_proxy_accepts_a_trusted_origin(settings, user):
    # nginx terminates TLS and forwards plain HTTP with X-Forwarded-Proto: https.
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com"]
    browser = Client(
        enforce_csrf_checks=True,
        headers={"host": "chat.example.com", "x-forwarded-proto": "https"},
    )
    token = csrf_token(browser, "/accounts/login/")

    def login(origin: str):
        return browser.post(
            "/accounts/login/",
            {"username": "Alice", "password": "correct horse 42", "csrfmiddlewaretoken": token},
            headers={"origin": origin},
        )

    assert login("https://evil.example").status_code == 403
    assert login("https://chat.example.com").status_code == 302
