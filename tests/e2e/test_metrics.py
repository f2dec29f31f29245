"""/metrics (djchat_metrics_enabled): the app's counters and nginx's stub_status in Prometheus's
format, read from this host through the published port as a Prometheus server on it would.
Who else may read it is tested with the other restricted paths (test_proxy.py)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import Stack, unique, wait_until


def scrape(stack: Stack) -> dict[str, float]:
    # What Prometheus 2 and 3 ask for by default, among others: the text format answers.
    response = stack.get("/metrics", headers={"Accept": "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"})
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        sample.name + "".join(f"|{k}={v}" for k, v in sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_are_off_unless_enabled(stack: Stack):
    if stack.expect.get("metrics_enabled"):
        pytest.skip("this scenario enables /metrics")
    assert stack.get("/metrics").status_code == 404


def test_metrics_count_requests_sockets_and_messages_and_show_nginx(stack: Stack, room: str):
    if not stack.expect.get("metrics_enabled"):
        pytest.skip("djchat_metrics_enabled is off in this scenario")
    before = scrape(stack)
    for _ in range(3):
        assert stack.get("/").status_code == 200
    with stack.chat(room, nick=unique("counted")[:30]) as client:
        client.say("counted")

    def moved() -> dict[str, float] | None:
        after = scrape(stack)
        closed = "djchat_websocket_connections_closed_total"
        return after if after[closed] > before[closed] else None

    after = wait_until(moved, timeout=15, what="the socket's close to be counted")
    grew = {name: after[name] - before.get(name, 0) for name in after}
    assert grew["djchat_http_requests_total|status=2xx"] >= 4  # three pages and one scrape
    assert grew["djchat_websocket_connections_opened_total"] >= 1
    assert grew["djchat_chat_messages_total"] >= 1
    assert after["nginx_up"] == 1, "the app could not read nginx's stub_status"
    assert after["nginx_connections_active"] >= 1  # this scrape's own
    assert grew["nginx_http_requests_total"] >= 5
    assert after["nginx_connections_handled_total"] <= after["nginx_connections_accepted_total"]
