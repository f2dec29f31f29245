"""Test session wiring: a real Redis, collected static files, and the app pointed at both."""

from __future__ import annotations

import secrets
import uuid

import pytest
import redis
from django.conf import settings
from django.test.utils import override_settings

from chat.services.fanout import close_hub
from chat.services.redis_client import close_client
from djchat import config
from tests import servers
from tests.support import ChatClients

TEST_SECRET_KEY = secrets.token_urlsafe(50)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    with servers.redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory):
    """collectstatic as the image build runs it: no secret key, no database, no Redis."""
    static_root = tmp_path_factory.mktemp("staticfiles")
    unreachable = tmp_path_factory.mktemp("nowhere")
    result = servers.manage(
        "collectstatic",
        "--noinput",
        env=servers.app_env(
            DJANGO_STATIC_ROOT=str(static_root),
            DATABASE_URL=f"sqlite:///{unreachable}/missing-dir/db.sqlite3",
            REDIS_URL="redis://127.0.0.1:9/0",
        ),
    )
    return result, static_root


@pytest.fixture(scope="session", autouse=True)
def app_settings(redis_server, collected_static):
    """For the whole session: the test Redis, a secret key, and the collected (hashed) files."""
    _, static_root = collected_static
    # Set outright rather than overridden: restoring the empty production default at the end of
    # the session would make Django raise for the empty key.
    settings.SECRET_KEY = TEST_SECRET_KEY
    overrides = override_settings(
        STATIC_ROOT=static_root,
        REDIS_URL=redis_server.url,
        REDIS_PASSWORD=redis_server.password,
        CACHES=config.redis_cache(redis_server.url, redis_server.password),
    )
    overrides.enable()
    # Import the ASGI application now: it sets Django up, which reconfigures logging, and doing
    # that inside a test would detach pytest's log capture for that test.
    import djchat.asgi  # noqa: F401

    yield
    overrides.disable()


@pytest.fixture(autouse=True)
def clean_redis(redis_server):
    """Each test starts with an empty Redis (no presence, quotas or cache left by another)."""
    client = redis.Redis(port=redis_server.port, password=redis_server.password)
    client.flushall()
    client.close()


@pytest.fixture(scope="session")
def stack(redis_server, tmp_path_factory):
    with servers.running_stack(redis_server, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def room() -> str:
    return f"room-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def chat():
    clients = ChatClients()
    yield clients
    await clients.close_all()
    await close_hub()
    await close_client()


@pytest.fixture
def user(transactional_db, django_user_model):
    return django_user_model.objects.create_user(username="Alice", password="correct horse 42")


@pytest.fixture
def session_cookie(client, user) -> str:
    """The Cookie header of a browser that logged in as `user` over HTTP."""
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"
