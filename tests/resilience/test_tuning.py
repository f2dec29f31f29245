"""Tuning under traffic: group_vars changes applied by site.yml while a probe GETs / every 0.1 s
and two chatters talk. Each change must roll out with 0 failed requests and 0 lost messages,
whatever it recreates: gunicorn's worker count and class, the asgi replica count up and down,
a chat setting, an nginx limit (a reload: open WebSockets stay up). TLS on and off changes
nginx's published ports, which only a new nginx container can have: its cost is measured and
printed. A value the app itself rejects stops the play with the app's words and leaves every
serving container as it was. Figures are printed per change; the last converge returns the stack
to the scenario's own values.
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import urlsplit

import pytest

from helpers import ASGI_SERVICE, Stack, unique, wait_until
from traffic import HttpProbe, playbook, run_under_load


def serving_containers(stack: Stack) -> dict[str, tuple[str, str]]:
    """Name -> (id, start time) of every running container of the project."""
    return {
        c.name: (c.attrs["Id"], c.attrs["State"]["StartedAt"])
        for c in stack.containers()
        if c.running
    }


def extra(**variables: object) -> str:
    return "--extra-vars=" + json.dumps(variables)


CHANGES = [
    pytest.param({"djchat_gunicorn_workers": 3}, id="gunicorn-workers-3"),
    pytest.param({"djchat_gunicorn_worker_class": "gthread"}, id="worker-class-gthread"),
    pytest.param({"djchat_gunicorn_worker_class": "gevent"}, id="worker-class-gevent"),
    pytest.param({"djchat_asgi_replicas": 3}, id="asgi-replicas-3"),
    pytest.param({"djchat_asgi_replicas": 1}, id="asgi-replicas-1"),
    pytest.param({"djchat_asgi_replicas": 2}, id="asgi-replicas-2"),
    pytest.param({"djchat_asgi_server": "daphne"}, id="asgi-server-daphne"),
    pytest.param({"djchat_asgi_server": "uvicorn"}, id="asgi-server-uvicorn"),
    pytest.param({"djchat_chat_history_size": 60}, id="chat-history-size-60"),
    pytest.param({}, id="back-to-the-inventory"),
]


@pytest.mark.disruptive
@pytest.mark.parametrize("variables", CHANGES)
def test_a_tuning_converge_fails_no_request_and_loses_no_message(stack: Stack, variables: dict):
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    replicas_before = len(stack.services(ASGI_SERVICE))
    http, chat, seconds, _ = run_under_load(stack, "site.yml", extra(**variables))
    replicas = len(stack.services(ASGI_SERVICE))
    what = variables or "the inventory's values"
    print(f"\n{what}: {seconds:.0f} s, {replicas} asgi; http {http}; chat {chat}")
    assert http["requests_failed"] == 0, f"requests failed during the converge: {http}"
    expected = variables.get("djchat_asgi_replicas", replicas_before)
    assert replicas == expected, f"{replicas} asgi replicas running, expected {expected}"
    assert stack.get("/").status_code == 200


@pytest.mark.disruptive
def test_an_nginx_limit_change_reloads_nginx_and_keeps_websockets_open(stack: Stack):
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    nginx = stack.service("nginx").attrs["Id"]
    conf = stack.service("nginx").exec("cat", "/etc/djchat/nginx/nginx.conf").stdout
    burst = int(re.search(r"burst=([0-9]+) ", conf).group(1)) + 10
    http, chat, seconds, _ = run_under_load(
        stack, "site.yml", extra(djchat_nginx_limit_req_burst=burst)
    )
    print(f"\nnginx burst {burst}: {seconds:.0f} s; http {http}; chat {chat}")
    assert http["requests_failed"] == 0, f"requests failed during the reload: {http}"
    assert chat["reconnects"] == 0, f"WebSockets were closed by an nginx reload: {chat}"
    assert stack.service("nginx").attrs["Id"] == nginx, "nginx was recreated, not reloaded"
    conf = stack.service("nginx").exec("cat", "/etc/djchat/nginx/nginx.conf").stdout
    assert f"burst={burst} " in conf
    playbook(stack, "site.yml")  # back to the inventory's value


@pytest.mark.disruptive
def test_tls_on_and_off_recreates_only_nginx_and_says_what_it_cost(stack: Stack):
    """nginx must be a new container to publish another port: measured through the HTTP port,
    which answers /nginx-health with TLS on and off."""
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    https_port = int(urlsplit(stack.http_url).port or 80) + 43
    try:
        for tls in (True, False):
            before = {n: i for n, i in serving_containers(stack).items() if "redis" in n}
            with HttpProbe(stack, path="/nginx-health", interval=0.05) as probe:
                time.sleep(1)
                started = time.monotonic()
                playbook(
                    stack,
                    "site.yml",
                    extra(
                        djchat_tls_enabled=tls,
                        djchat_tls_self_signed=tls,
                        djchat_https_port=https_port,
                    ),
                )
                seconds = time.monotonic() - started
                time.sleep(1)
            figures = probe.figures()
            print(f"\nTLS {'on' if tls else 'off'}: {seconds:.0f} s; nginx /nginx-health {figures}")
            assert {n: i for n, i in serving_containers(stack).items() if "redis" in n} == before
            assert figures["longest_failure_s"] < 5, f"nginx was away too long: {figures}"
            ports = {port for _, _, port in stack.service("nginx").published_ports}
            assert (str(https_port) in ports) == tls, ports
    except BaseException:
        playbook(stack, "site.yml")  # TLS off again for the tests after this one
        raise
    wait_until(lambda: stack.get("/").status_code == 200, timeout=60, what="/ after TLS off")


@pytest.mark.disruptive
def test_a_value_the_app_rejects_leaves_the_serving_stack_untouched(stack: Stack):
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    before = serving_containers(stack)
    # Accepted by the role's validation (any extra environment), refused by the app's settings.
    bad = extra(djchat_django_extra_env={"DJANGO_HSTS_PRELOAD": "maybe"})
    http, chat, seconds, result = run_under_load(stack, "site.yml", bad, expect_success=False)
    print(f"\nrejected value: {seconds:.0f} s; http {http}; chat {chat}")
    assert "DJANGO_HSTS_PRELOAD='maybe' is not a boolean" in result.stdout, result.stdout[-3000:]
    assert "nothing that serves was changed" in result.stdout
    assert serving_containers(stack) == before, "a serving container was replaced or restarted"
    assert http["requests_failed"] == 0, http
    with stack.chat(unique("res-after-reject"), nick="after") as client:
        assert client.served_by
    # The files on disk are the ones that serve again (a restart or `compose up` finds them).
    env = (stack.project_dir / "app.env").read_text()
    assert "DJANGO_HSTS_PRELOAD" not in env, "app.env kept the rejected value"
    assert not list(stack.project_dir.glob("*~")), "backups of the rendered files were left"


@pytest.mark.disruptive
def test_a_new_container_that_never_turns_healthy_is_removed_and_the_serving_ones_stay(
    stack: Stack,
):
    """A release that passes every preflight step but whose new asgi containers never turn healthy
    (1% of a CPU: the server is still importing the app when the wait ends) is taken back: the new
    containers removed with their last lines in the failure, the serving ones the same, nothing
    failed or lost meanwhile, the files on disk those of the release that serves."""
    if not stack.reconverge_command:
        pytest.skip("E2E_RECONVERGE_COMMAND is not set")
    before = serving_containers(stack)
    asgi = {c.name for c in stack.services(ASGI_SERVICE)}
    starved = extra(djchat_asgi_cpus=0.01, djchat_compose_wait_timeout=30)
    http, chat, seconds, result = run_under_load(stack, "site.yml", starved, expect_success=False)
    print(f"\nnever healthy: {seconds:.0f} s; http {http}; chat {chat}")
    assert "did not become healthy within 30 s" in result.stdout, result.stdout[-3000:]
    assert "The new containers were removed; the serving ones were not touched." in result.stdout
    assert serving_containers(stack) == before, "a serving container was replaced or restarted"
    left = {c.name for c in stack.containers() if re.fullmatch(ASGI_SERVICE, c.service)}
    assert left == asgi, f"the new asgi containers were not all removed: {left - asgi}"
    assert http["requests_failed"] == 0, http
    compose = (stack.project_dir / "compose.yml").read_text()
    assert "cpus: 0.01" not in compose, "compose.yml kept the release that never served"
    assert not list(stack.project_dir.glob("*~")), "backups of the rendered files were left"
    playbook(stack, "site.yml")  # the next converge goes on as usual
