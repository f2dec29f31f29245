"""A password hash must not stall the other requests of a gevent worker (djchat.hashers).

One gunicorn worker with gevent (the deployed worker class): while logins hash their passwords,
a health check on the same worker is answered at once, not after the hashes. The figure it is held
to is one login's own duration, measured in the same run.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

import pytest
import requests

from tests import servers

PASSWORD = "a long passphrase 981"
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(scope="module")
def one_gevent_worker(redis_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hashing")
    env = servers.app_env(
        # Debug, as servers.running_stack: pages render without collected static files.
        DJANGO_DEBUG="true",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=f"sqlite:///{workdir}/db.sqlite3",
        REDIS_URL=redis_server.url,
        REDIS_PASSWORD_FILE=str(servers.write_secret(workdir / "pw", redis_server.password)),
        GUNICORN_WORKER_CLASS="gevent",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    for step in (
        ("migrate", "--noinput"),
        ("createsuperuser", "--noinput", "--username", "alice", "--email", "a@example.com"),
    ):
        done = servers.manage(*step, env=env)
        assert done.returncode == 0, done.stderr
    with servers.gunicorn(env, workdir / "gunicorn.log", workers=1) as server:
        yield server


def log_in(server) -> float:
    """Seconds a login takes (form, then the POST that hashes the password)."""
    with requests.Session() as session:
        form = session.get(f"{server.base_url}/accounts/login/", timeout=30)
        token = CSRF_FIELD.search(form.text).group(1)
        started = time.monotonic()
        response = session.post(
            f"{server.base_url}/accounts/login/",
            data={"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token},
            allow_redirects=False,
            timeout=60,
        )
        assert response.status_code == 302, response.text[:500]
        return time.monotonic() - started


def test_a_health_check_is_not_held_up_by_password_hashes(one_gevent_worker):
    server = one_gevent_worker
    one_login = min(log_in(server) for _ in range(2))  # the floor, on this machine, now

    logins = [threading.Thread(target=log_in, args=(server,)) for _ in range(4)]
    for login in logins:
        login.start()
    time.sleep(one_login / 4)  # the hashes are running
    started = time.monotonic()
    health = requests.get(f"{server.base_url}/healthz", timeout=30)
    waited = time.monotonic() - started
    for login in logins:
        login.join()

    print(f"\none login {one_login:.3f} s; /healthz during 4 logins answered in {waited:.3f} s")
    assert health.status_code == 200
    assert waited < one_login / 2, (
        f"/healthz waited {waited:.3f} s behind the hashes (one login: {one_login:.3f} s)"
    )
