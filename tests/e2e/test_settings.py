"""Each deployed setting took effect in the running containers, not just in the files: asgi
server and replica count, gunicorn worker processes and class, nginx's upstream list, TLS,
redirect, HSTS.
The expected values come from the scenario (E2E_EXPECT); a test whose value is unknown is
skipped."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from helpers import ASGI_SERVICE, Stack, docker, wait_until


def expect(stack: Stack, key: str):
    if stack.expect.get(key) in (None, ""):
        pytest.skip(f"E2E_EXPECT has no {key!r}")
    return stack.expect[key]


def test_asgi_replica_count(stack: Stack):
    replicas = int(expect(stack, "asgi_replicas"))
    running = stack.services(ASGI_SERVICE)
    assert len(running) == replicas, (
        f"{len(running)} asgi containers running ({[c.name for c in running]}), expected {replicas}"
    )
    assert len({container.hostname for container in running}) == replicas


# What each server logs when it starts listening.
ASGI_SERVER_STARTED = {"uvicorn": "Uvicorn running on", "daphne": "Starting server at"}


def test_asgi_replicas_run_the_configured_server(stack: Stack):
    server = expect(stack, "asgi_server")
    for container in stack.services(ASGI_SERVICE):
        logs = container.logs()
        started = {name for name, line in ASGI_SERVER_STARTED.items() if line in logs}
        assert started == {server}, f"{container.name} started {started or 'none'}: {logs[-800:]}"


def test_nginx_upstream_lists_every_asgi_replica(stack: Stack):
    replicas = int(expect(stack, "asgi_replicas"))
    nginx = stack.service("nginx")
    # nginx -T with the configuration the running master process was started with (-c).
    masters = [p["args"] for p in nginx.top() if p["args"].startswith("nginx: master process")]
    assert masters, f"no nginx master process in {nginx.name}: {nginx.top()}"
    configuration = re.search(r"\s-c\s+(\S+)", masters[0])
    config = nginx.exec("nginx", *(["-c", configuration[1]] if configuration else []), "-T").stdout
    upstreams = dict(
        re.findall(r"^\s*upstream\s+(\S+)\s*\{(.*?)\}", config, re.DOTALL | re.MULTILINE)
    )
    servers = {
        name: re.findall(r"^\s*server\s+([^\s;]+)", body, re.MULTILINE)
        for name, body in upstreams.items()
    }
    asgi = {name: hosts for name, hosts in servers.items() if any("asgi" in h for h in hosts)}
    assert len(asgi) == 1, f"expected one upstream of asgi servers in nginx -T, found {servers}"
    (hosts,) = asgi.values()
    names = sorted({h.split(":")[0] for h in hosts})
    assert len(names) == replicas, f"nginx balances /ws/ over {names}, expected {replicas} replicas"
    services = sorted(c.service for c in stack.services(ASGI_SERVICE))
    if len(services) == replicas:  # one service per replica: nginx names each of them
        assert names == services


def gunicorn_processes(stack: Stack) -> tuple[dict, list[dict]]:
    processes = [p for p in stack.service("wsgi").top() if "gunicorn" in p["args"]]
    pids = {p["pid"] for p in processes}
    masters = [p for p in processes if p["ppid"] not in pids]
    assert len(masters) == 1, f"expected one gunicorn master in wsgi, found {processes}"
    workers = [p for p in processes if p["ppid"] == masters[0]["pid"]]
    return masters[0], workers


# gunicorn.conf.py's own rule for GUNICORN_WORKERS=0 (djchat/cpus.py), run where gunicorn runs.
AUTO_WORKERS = "from djchat.cpus import auto_workers as a, usable_cpus as u; print(a(u()))"
USABLE_CPUS = "from djchat.cpus import usable_cpus; print(usable_cpus())"


def test_the_app_counts_the_cpus_of_the_wsgi_containers_limit(stack: Stack):
    wsgi = stack.service("wsgi")
    limit = wsgi.attrs["HostConfig"].get("NanoCpus") or 0
    if not limit:
        pytest.skip("the wsgi container has no CPU limit")
    # docker top shows host pids: the suite runs on the Docker host, so these are its CPUs.
    expected = min(limit / 1e9, len(os.sched_getaffinity(0)))
    seen = float(wsgi.exec("python", "-c", USABLE_CPUS).stdout)
    assert seen == pytest.approx(expected), (
        f"the app in {wsgi.name} counts {seen} usable CPUs; its limit is {limit / 1e9} CPUs on a "
        f"host of {len(os.sched_getaffinity(0))}"
    )


def test_gunicorn_runs_the_configured_number_of_workers(stack: Stack):
    configured = int(expect(stack, "gunicorn_workers"))
    # 0 = automatic: the count the app's own rule gives inside the running wsgi container.
    expected = configured or int(stack.service("wsgi").exec("python", "-c", AUTO_WORKERS).stdout)
    # Workers are recycled after max-requests: a count is only wrong if it stays wrong.
    wait_until(
        lambda: len(gunicorn_processes(stack)[1]) == expected,
        timeout=20,
        what=f"{expected} gunicorn workers in wsgi (now {len(gunicorn_processes(stack)[1])})",
    )


def test_gunicorn_uses_the_configured_worker_class(stack: Stack):
    worker_class = expect(stack, "gunicorn_worker_class")
    logged = re.findall(r"Using worker: (\S+)", stack.service("wsgi").logs())
    assert logged, f"gunicorn never logged its worker class {stack.logs_hint('wsgi')}"
    # gunicorn names the class as given (gevent, gthread, sync) or by its dotted path.
    assert logged[-1].rsplit(".", 1)[-1].lower().startswith(worker_class), (
        f"gunicorn runs {logged[-1]!r} workers, expected {worker_class!r}"
    )


def test_gthread_workers_run_the_configured_threads(stack: Stack):
    if expect(stack, "gunicorn_worker_class") != "gthread":
        pytest.skip("not a gthread deployment")
    threads = int(expect(stack, "gunicorn_threads"))
    # gthread's pool starts threads on demand: keep a worker busy with concurrent requests, then
    # count the threads of the busiest worker (host /proc: docker top gives host pids).
    with ThreadPoolExecutor(4 * threads) as pool:
        list(pool.map(lambda _: stack.get("/readyz"), range(40 * threads)))
    _, workers = gunicorn_processes(stack)
    counts = [len(list(Path(f"/proc/{w['pid']}/task").iterdir())) for w in workers]
    # The worker's main thread plus at most `threads` request threads.
    assert max(counts) <= threads + 2, f"thread counts {counts} exceed {threads} threads"
    assert max(counts) > 1, f"no gthread worker ever ran a request thread: {counts}"


def test_nginx_runs_the_configured_worker_processes(stack: Stack):
    workers = str(expect(stack, "nginx_worker_processes"))
    if not workers.isdigit():
        pytest.skip(f"nginx_worker_processes is {workers!r}")
    running = [p for p in stack.service("nginx").top() if "worker process" in p["args"]]
    assert len(running) == int(workers), f"nginx runs {len(running)} workers: {running}"


def size_in_bytes(size: str, binary_m: bool) -> int:
    """A size as Redis reads it ("96mb" = 96 MiB but "96m" = 96 000 000) or, with binary_m,
    as Docker does ("384m" = 384 MiB)."""
    number, unit = re.fullmatch(r"(\d+)\s*([a-z]*)", size.strip().lower()).groups()
    powers = {"": 0, "k": 1, "m": 2, "g": 3}
    base = 1024 if unit.endswith("b") or binary_m else 1000
    return int(number) * base ** powers[unit.rstrip("b")]


def redis_cli(stack: Stack, *command: str) -> str:
    """redis-cli in the redis container, authenticated with the password the role generated."""
    password = (stack.project_dir / "secrets" / "redis_password").read_text().strip()
    result = docker(
        "exec", "-e", f"REDISCLI_AUTH={password}", stack.service("redis").name,
        "redis-cli", *command,
    )  # fmt: skip
    return result.stdout.strip()


def test_redis_answers_clients_with_the_password(stack: Stack):
    assert redis_cli(stack, "PING") == "PONG"


def test_redis_runs_with_the_configured_maxmemory(stack: Stack):
    maxmemory = expect(stack, "redis_maxmemory")
    # CONFIG is renamed away in the role's redis.conf; INFO reports the limit too.
    info = dict(
        line.split(":", 1)
        for line in redis_cli(stack, "INFO", "memory").splitlines()
        if ":" in line
    )
    assert info.get("maxmemory") == str(size_in_bytes(maxmemory, binary_m=False)), (
        f"redis maxmemory is {info.get('maxmemory')} bytes, expected {maxmemory}"
    )


def test_rooms_fan_out_through_one_subscription_per_asgi_process(stack: Stack, room: str):
    """A room's broadcasts go through Redis pub/sub (chat.services.fanout): each asgi process
    holding members of the room subscribes to its channel once, however many members it holds;
    the channel layer keeps no group for the room."""
    with (
        stack.chat(room, nick="one") as one,
        stack.chat(room, nick="two") as two,
        stack.chat(room, nick="three") as three,
    ):
        numsub = redis_cli(stack, "PUBSUB", "NUMSUB", f"djchat:room:{room}")
        group = redis_cli(stack, "EXISTS", f"djchat:asgi:group:chat.{room}")
        processes = {one.served_by, two.served_by, three.served_by}

    assert int(numsub.splitlines()[-1]) == len(processes), (
        f"{len(processes)} asgi process(es) hold the room's members ({sorted(processes)}); Redis "
        f"shows subscribers {numsub!r} {stack.logs_hint('asgi1')}"
    )
    assert group == "0", "no channel-layer group"


def test_asgi_containers_have_the_configured_memory_limit(stack: Stack):
    limit = size_in_bytes(expect(stack, "asgi_memory"), binary_m=True)
    for container in stack.services(ASGI_SERVICE):
        assert container.attrs["HostConfig"]["Memory"] == limit, (
            f"{container.name}: memory limit {container.attrs['HostConfig']['Memory']}, "
            f"expected {limit}"
        )


# --- TLS -----------------------------------------------------------------------------------------


@pytest.fixture
def tls(stack: Stack) -> Stack:
    if not expect(stack, "tls"):
        pytest.skip("TLS is off in this scenario")
    return stack


def installed_certificates(stack: Stack) -> list[bytes]:
    """DER of every PEM certificate in the project's tls directory (what the role installed)."""
    found = []
    for path in sorted(stack.project_dir.glob("**/*")):
        if path.suffix in (".crt", ".pem") and path.is_file():
            text = path.read_text(errors="replace")
            for block in re.findall(
                r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.DOTALL
            ):
                found.append(ssl.PEM_cert_to_DER_cert(block))
    return found


def test_tls_handshake_presents_the_installed_certificate(tls: Stack):
    port = int(expect(tls, "https_port"))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        version = conn.version()
        served = conn.getpeercert(binary_form=True)
    assert version in ("TLSv1.2", "TLSv1.3"), f"negotiated {version}"
    installed = installed_certificates(tls)
    assert served in installed, (
        f"the certificate on :{port} (sha256 {hashlib.sha256(served).hexdigest()[:16]}) is not "
        f"one of the {len(installed)} under {tls.project_dir}"
    )


def tls12_handshake(port: int, ciphers: str) -> str | None:
    """The suite a TLS 1.2 handshake offering only `ciphers` settles on, or None if refused."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(f"{ciphers}:@SECLEVEL=0")  # this client offers even what it would refuse
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as conn,
        ):
            return conn.cipher()[0]
    except ssl.SSLError:
        return None


def test_tls12_offers_forward_secret_aead_suites_only(tls: Stack):
    port = int(expect(tls, "https_port"))
    # CBC with SHA-1 and RSA key exchange (no forward secrecy): what nginx's default allowed.
    for weak in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256"):
        assert tls12_handshake(port, weak) is None, f"{weak} was accepted"
    assert tls12_handshake(port, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")


def test_plain_http_redirects_to_https(tls: Stack):
    response = requests.get(tls.http_url + "/r/lobby/?from=http", allow_redirects=False, timeout=10)
    assert response.status_code in (301, 308), f"http answered {response.status_code}"
    assert response.headers["Location"] == tls.base_url + "/r/lobby/?from=http"


def test_the_redirect_to_https_never_echoes_a_foreign_host(tls: Stack):
    response = requests.get(
        tls.http_url + "/r/lobby/",
        headers={"Host": "evil.example"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code in (301, 308), f"http answered {response.status_code}"
    location = response.headers["Location"]
    assert "evil.example" not in location, location
    assert location.startswith("https://"), location
    assert location.endswith(f":{expect(tls, 'https_port')}/r/lobby/"), location


def test_https_responses_carry_hsts(tls: Stack):
    max_age = int(expect(tls, "hsts_max_age"))
    header = tls.get("/").headers.get("Strict-Transport-Security", "")
    assert re.search(rf"max-age={max_age}\b", header), f"Strict-Transport-Security: {header!r}"


def test_websocket_runs_over_tls(tls: Stack, room: str):
    with tls.chat(room, nick="secure") as client:
        assert client.say("over wss")["nick"] == "secure"
