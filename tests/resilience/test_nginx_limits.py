"""nginx's own limits, exercised over HTTP: per-address request rate (429), body size (413),
oversized headers and URLs (400/414), slow clients dropped after djchat_nginx_client_timeout,
a foreign Host header refused (400, never a 5xx). Every test prints what it sent and got.

Limits as molecule/resilience deploys them (host_vars/localhost.yml).
"""

from __future__ import annotations

import re
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from helpers import Stack, wait_until

RATE = 50  # djchat_nginx_limit_req_per_second
BURST = 50  # djchat_nginx_limit_req_burst
BODY_LIMIT = 64 * 1024  # djchat_nginx_client_max_body_size: 64k
CLIENT_TIMEOUT = 5  # djchat_nginx_client_timeout


def statuses(stack: Stack, count: int, workers: int, path: str = "/healthz") -> Counter:
    """`count` GETs of `path` from `workers` threads, as fast as they go: status -> how many."""

    def one(session: requests.Session) -> str:
        try:
            return str(session.get(stack.url(path), timeout=15).status_code)
        except requests.RequestException as error:
            return type(error).__name__

    sessions = [stack.session() for _ in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = Counter(pool.map(one, (sessions[n % workers] for n in range(count))))
    for session in sessions:
        session.close()
    return results


def settle(stack: Stack) -> None:
    """Let nginx's per-address bucket drain after an earlier flood (the burst leaks at RATE per
    second), so the next test's own requests are not the ones refused."""
    time.sleep(BURST / RATE + 0.5)
    wait_until(lambda: stack.get("/healthz").status_code == 200, timeout=10, what="a 200")


def test_request_rate_over_the_limit_is_answered_429_and_recovers(stack: Stack):
    started = time.monotonic()
    results = statuses(stack, count=6 * (RATE + BURST), workers=24)
    seconds = time.monotonic() - started
    print(
        f"\nrate limit: {sum(results.values())} requests in {seconds:.1f} s "
        f"({sum(results.values()) / seconds:.0f}/s, limit {RATE}/s burst {BURST}): {dict(results)}"
    )
    assert set(results) <= {"200", "429"}, f"answers other than 200 and 429: {results}"
    assert results["429"] > 0, "nginx never limited the request rate"
    assert results["200"] >= BURST, "fewer requests served than the burst allows"
    recovered = wait_until(
        lambda: stack.get("/healthz").status_code == 200, timeout=10, what="a 200 after the flood"
    )
    assert recovered


def test_static_files_are_not_rate_limited(stack: Stack):
    settle(stack)
    page = stack.get("/r/res-assets/").text
    asset = re.search(r'(?:href|src)="(/static/[^"]+)"', page).group(1)
    results = statuses(stack, count=4 * (RATE + BURST), workers=24, path=asset)
    print(f"\nstatic under the same flood: {dict(results)}")
    assert set(results) == {"200"}, results


def test_body_over_the_limit_is_refused_with_413(stack: Stack):
    settle(stack)
    with stack.session() as session:
        over = session.post(
            stack.url("/accounts/login/"), data=b"x" * (BODY_LIMIT + 1024), timeout=15
        )
        under = session.post(
            stack.url("/accounts/login/"), data=b"x" * (BODY_LIMIT // 2), timeout=15
        )
    print(
        f"\nbody {BODY_LIMIT + 1024} B -> {over.status_code};"
        f" {BODY_LIMIT // 2} B -> {under.status_code}"
    )
    assert over.status_code == 413
    assert under.status_code not in (413, 429)
    assert under.status_code < 500


def test_oversized_header_and_url_are_refused(stack: Stack):
    with stack.session() as session:
        header = session.get(stack.url("/"), headers={"Cookie": "a=" + "x" * 64 * 1024}, timeout=15)
        url = session.get(stack.url("/?q=" + "x" * 64 * 1024), timeout=15)
    print(f"\n64 KiB cookie -> {header.status_code}; 64 KiB URL -> {url.status_code}")
    assert header.status_code == 400
    assert url.status_code == 414


def test_foreign_host_header_is_refused_without_a_server_error(stack: Stack):
    response = stack.get("/", headers={"Host": "evil.example"})
    print(f"\nHost: evil.example -> {response.status_code}")
    assert response.status_code == 400


def raw_connection(stack: Stack) -> socket.socket:
    parts = urlsplit(stack.http_url)
    return socket.create_connection((parts.hostname, parts.port or 80), timeout=30)


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return float("inf")
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_slow_request_header_is_dropped_after_the_client_timeout(stack: Stack):
    with raw_connection(stack) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        seconds = seconds_until_closed(sock, limit=CLIENT_TIMEOUT * 4)
    print(f"\nslowloris header: nginx closed after {seconds:.1f} s (timeout {CLIENT_TIMEOUT} s)")
    assert seconds <= CLIENT_TIMEOUT + 3


def test_slow_request_body_is_dropped_after_the_client_timeout(stack: Stack):
    with raw_connection(stack) as sock:
        sock.sendall(
            b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\nusername=a"
        )
        seconds = seconds_until_closed(sock, limit=CLIENT_TIMEOUT * 4)
    print(f"\nslow body: nginx closed after {seconds:.1f} s (timeout {CLIENT_TIMEOUT} s)")
    assert seconds <= CLIENT_TIMEOUT + 3
