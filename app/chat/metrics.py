"""The chat's counters for Prometheus (`/metrics`, with DJANGO_METRICS_ENABLED), one set for the
whole stack: every process of every container adds to one Redis hash, so a scrape through any
nginx, answered by any wsgi worker, reads the same totals.

- djchat_http_requests_total{status}: requests the app answered, by status class (2xx, 3xx,
  4xx, 5xx; health checks are not counted);
- djchat_websocket_connections_opened_total / _closed_total: chat sockets accepted and ended
  (their difference drifts when a process is killed before its sockets close: rate() is the
  figure to read);
- djchat_chat_messages_total: messages stored and broadcast; djchat_chat_messages_refused_total:
  messages refused by a rate limit;
- nginx_*: the figures of the nginx that forwarded the scrape, read from its stub_status on the
  stack's own network (never published): connections active, reading, writing and waiting, and
  the totals accepted, handled and requests; nginx_up is 0 when it could not be read.

Counting never fails or delays what is counted beyond one Redis command: an error is dropped.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterable, Iterator

import redis
from django.conf import settings
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from chat.services.redis_client import redis_client, sync_redis_client

logger = logging.getLogger(__name__)

KEY = "djchat:metrics"
HTTP_REQUESTS = "http_requests:"  # + status class
WEBSOCKETS_OPENED = "websocket_connections_opened"
WEBSOCKETS_CLOSED = "websocket_connections_closed"
MESSAGES = "chat_messages"
MESSAGES_REFUSED = "chat_messages_refused"
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")

_sync_client: redis.Redis | None = None


def _client() -> redis.Redis:
    global _sync_client
    if _sync_client is None:
        _sync_client = sync_redis_client(socket_timeout=2)
    return _sync_client


def count(field: str, amount: int = 1) -> None:
    """Add to a counter from synchronous code (a gunicorn worker)."""
    if not settings.METRICS_ENABLED:
        return
    try:
        _client().hincrby(KEY, field, amount)
    except redis.RedisError:
        logger.debug("metrics: could not count %s", field, exc_info=True)


async def acount(field: str, amount: int = 1) -> None:
    """Add to a counter from the event loop (a daphne process)."""
    if not settings.METRICS_ENABLED:
        return
    try:
        await redis_client().hincrby(KEY, field, amount)
    except redis.RedisError:
        logger.debug("metrics: could not count %s", field, exc_info=True)


def status_class(status: int) -> str:
    return f"{min(max(status // 100, 2), 5)}xx"


class MetricsMiddleware:
    """Counts the responses of the requests that reach the app's views."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        count(HTTP_REQUESTS + status_class(response.status_code))
        return response


# stub_status's answer:
#   Active connections: 2
#   server accepts handled requests
#    10 10 25
#   Reading: 0 Writing: 1 Waiting: 1
def parse_stub_status(text: str) -> dict[str, int]:
    lines = text.split("\n")
    accepts, handled, requests = (int(n) for n in lines[2].split())
    words = lines[3].split()
    return {
        "active": int(lines[0].split(":")[1]),
        "accepted": accepts,
        "handled": handled,
        "requests": requests,
        "reading": int(words[1]),
        "writing": int(words[3]),
        "waiting": int(words[5]),
    }


def read_stub_status(address: str) -> dict[str, int] | None:
    if not settings.METRICS_NGINX_STATUS_PORT or not address:
        return None
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:{settings.METRICS_NGINX_STATUS_PORT}/stub_status"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # nosec B310: http, built above
            return parse_stub_status(response.read().decode())
    except (OSError, ValueError, IndexError):
        logger.warning("metrics: no stub_status at %s", url, exc_info=True)
        return None


class StackCollector(Collector):
    def __init__(self, counters: dict[str, int], nginx: dict[str, int] | None):
        self.counters, self.nginx = counters, nginx

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "djchat_http_requests", "HTTP requests the app answered, by status class",
            labels=["status"],
        )  # fmt: skip
        for status in STATUS_CLASSES:
            requests.add_metric([status], self.counters.get(HTTP_REQUESTS + status, 0))
        yield requests
        for field, name, text in (
            (WEBSOCKETS_OPENED, "djchat_websocket_connections_opened", "Chat sockets accepted"),
            (WEBSOCKETS_CLOSED, "djchat_websocket_connections_closed", "Chat sockets ended"),
            (MESSAGES, "djchat_chat_messages", "Chat messages stored and broadcast"),
            (MESSAGES_REFUSED, "djchat_chat_messages_refused", "Chat messages over a rate limit"),
        ):
            yield CounterMetricFamily(name, text, value=self.counters.get(field, 0))
        yield from nginx_metrics(self.nginx)


def nginx_metrics(status: dict[str, int] | None) -> Iterable[Metric]:
    yield GaugeMetricFamily(
        "nginx_up", "Whether nginx's stub_status answered", value=int(bool(status))
    )
    if not status:
        return
    for name in ("accepted", "handled"):
        yield CounterMetricFamily(
            f"nginx_connections_{name}", f"Client connections {name}", value=status[name]
        )
    for name in ("active", "reading", "writing", "waiting"):
        yield GaugeMetricFamily(
            f"nginx_connections_{name}", f"Client connections {name}", value=status[name]
        )
    yield CounterMetricFamily("nginx_http_requests", "Client requests", value=status["requests"])


def registry_for(nginx_address: str) -> CollectorRegistry:
    """What one scrape shows: the stack's counters and the forwarding nginx's figures."""
    raw = _client().hgetall(KEY)
    counters = {key.decode(): int(value) for key, value in raw.items()}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StackCollector(counters, read_stub_status(nginx_address)))
    return registry
