"""/metrics (chat.metrics): the stack's counters in Prometheus's format, kept in the real Redis,
counted by real requests and sockets; 404 unless switched on."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chat import metrics

pytestmark = pytest.mark.django_db(transaction=True)

# What nginx's stub_status answers (nginx 1.22-1.26), figures made up.
# (Its lines end in a space.)
STUB_STATUS = (
    "Active connections: 3 \n"
    "server accepts handled requests\n"
    " 17 16 42 \n"
    "Reading: 1 Writing: 2 Waiting: 0 \n"
)


@pytest.fixture
def enabled(settings):
    settings.METRICS_ENABLED = True
    return settings


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_off_by_default(client):
    assert client.get("/metrics").status_code == 404
    client.get("/")
    assert client.get("/metrics").status_code == 404  # and nothing was counted


def test_counts_http_answers_by_status_class(client, enabled):
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert client.get("/r/Not A Room/").status_code == 404
    assert client.get("/healthz").status_code == 200  # health checks are not counted

    seen = scrape(client)

    assert seen[("djchat_http_requests_total", (("status", "2xx"),))] == 3
    assert seen[("djchat_http_requests_total", (("status", "4xx"),))] == 1
    assert seen[("djchat_http_requests_total", (("status", "5xx"),))] == 0
    assert seen[("nginx_up", ())] == 0  # no nginx in front here


async def test_counts_sockets_and_messages(chat, room, enabled, async_client):
    alice = await chat.join(room, "alice")
    enabled.CHAT_RATE_LIMIT_MESSAGES = 1
    bob = await chat.join(room, "bob")
    await alice.send({"type": "message", "text": "hello"})
    await bob.send({"type": "message", "text": "one"})
    await bob.send({"type": "message", "text": "two: over the limit"})
    await bob.receive_type("error")
    await alice.close()
    await bob.close()

    response = await async_client.get("/metrics")
    seen = {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }

    assert seen["djchat_websocket_connections_opened_total"] == 2
    assert seen["djchat_websocket_connections_closed_total"] == 2
    assert seen["djchat_chat_messages_total"] == 2
    assert seen["djchat_chat_messages_refused_total"] == 1


def test_answers_openmetrics_to_a_scraper_that_asks_for_it(client, enabled):
    response = client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0"}
    )

    assert response["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.content.decode().endswith("# EOF\n")


def test_reads_nginx_stub_status():
    assert metrics.parse_stub_status(STUB_STATUS) == {
        "active": 3, "accepted": 17, "handled": 16, "requests": 42,
        "reading": 1, "writing": 2, "waiting": 0,
    }  # fmt: skip
