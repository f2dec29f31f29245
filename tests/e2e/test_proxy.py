"""Who nginx believes: the client address and scheme from djchat_trusted_proxies only, /admin/ and
/readyz from this host and djchat_admin_allowed_addresses only, /admin/ on djchat_admin_host alone.

This host reaches the stack through its published port, like every other test. Peers with other
addresses are containers on a network of the test's own (internal: no route anywhere, so it never
becomes nginx's default route) that nginx joins for the module and leaves after: one inside
the first range of djchat_trusted_proxies (a balancer), one inside the first range of
djchat_admin_allowed_addresses (an operator), one in neither (a stranger). Their requests go to
nginx's own ports on that network and never leave this machine. The tests that need ranges the
scenario did not set are skipped (E2E_EXPECT).
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from helpers import Stack, docker, unique, wait_until

pytestmark = pytest.mark.disruptive  # nginx joins a network for the module (and leaves it)

# A request sent from inside a peer container with Python's http.client: JSON in, JSON out.
PEER_CLIENT = r"""
import http.client, json, ssl, sys
spec = json.loads(sys.argv[1])
answers = []
for request in spec["requests"]:
    if spec["tls"]:
        context = ssl._create_unverified_context()
        connection = http.client.HTTPSConnection(spec["host"], spec["port"], context=context)
    else:
        connection = http.client.HTTPConnection(spec["host"], spec["port"])
    connection.timeout = 10
    connection.request(request["method"], request["path"], body=request.get("body"),
                       headers=request["headers"])
    response = connection.getresponse()
    if response.status != 101:
        response.read()
    answers.append({"status": response.status, "headers": [list(h) for h in response.getheaders()]})
    connection.close()
print(json.dumps(answers))
"""

# The peers' network when the scenario trusts no proxies (else the /24 around the first range).
DEFAULT_SUBNET = "10.213.50.0/24"
NGINX_HTTP_PORT = 8080  # inside the container (roles/djchat_stack/vars/main/main.yml)
NGINX_HTTPS_PORT = 8443


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass(frozen=True)
class Peer:
    """A client container with a fixed address on the test network."""

    address: str
    network: str
    nginx: str  # nginx's address on that network
    image: str
    tls: bool
    host: str  # the Host header: the site's first name

    def send(self, *requests: dict) -> list[Answer]:
        spec = {
            "host": self.nginx,
            "port": NGINX_HTTPS_PORT if self.tls else NGINX_HTTP_PORT,
            "tls": self.tls,
            "requests": [
                {
                    "method": request.get("method", "GET"),
                    "path": request["path"],
                    "body": request.get("body"),
                    "headers": {"Host": self.host, **request.get("headers", {})},
                }
                for request in requests
            ],
        }
        result = docker(
            "run", "--rm", "--network", self.network, "--ip", self.address,
            "--entrypoint", "python", "--user", "10001", self.image,
            "-c", PEER_CLIENT, json.dumps(spec),
        )  # fmt: skip
        answers = json.loads(result.stdout)
        return [Answer(a["status"], [tuple(h) for h in a["headers"]]) for a in answers]

    def get(self, path: str, **headers: str) -> Answer:
        return self.send({"path": path, "headers": headers})[0]


def first_network(stack: Stack, key: str) -> ipaddress.IPv4Network | None:
    ranges = [ipaddress.ip_network(r) for r in stack.expect.get(key) or []]
    ranges = [r for r in ranges if r.version == 4]
    return ranges[0] if ranges else None


@pytest.fixture(scope="module")
def peers(stack: Stack):
    """balancer / operator / stranger peers (None where the scenario set no range for one)."""
    proxies = first_network(stack, "trusted_proxies")
    if proxies is not None and proxies.prefixlen < 24:
        pytest.skip("the first range of trusted_proxies is wider than a /24")
    # Without trusted proxies, a stranger (and an operator) still have something to show.
    subnet = proxies.supernet(new_prefix=24) if proxies else ipaddress.ip_network(DEFAULT_SUBNET)
    hosts = list(subnet.hosts())
    admins = first_network(stack, "admin_allowed_addresses")
    trusted = proxies or ipaddress.ip_network("0.0.0.0/32")
    operator = next((a for a in hosts if admins and a in admins and a not in trusted), None)
    # The network's own gateway address and nginx's are the last two, out of the peers' way.
    gateway, nginx_address = str(hosts[-2]), str(hosts[-1])
    stranger = next(
        a for a in reversed(hosts[:-2]) if a not in trusted and not (admins and a in admins)
    )
    network = f"{stack.project}-e2e-peers"
    nginx = stack.service("nginx")
    docker("network", "rm", network, check=False)
    docker(
        "network", "create", "--internal", "--subnet", str(subnet), "--gateway", gateway, network
    )  # fmt: skip
    try:
        docker("network", "connect", "--ip", nginx_address, network, nginx.name)
        peer = dict(
            network=network,
            nginx=nginx_address,
            image=stack.service("wsgi").attrs["Config"]["Image"],
            tls=stack.tls,
            host=(stack.expect.get("server_names") or ["localhost"])[0],
        )
        yield {
            "balancer": Peer(address=str(next(proxies.hosts())), **peer) if proxies else None,
            "operator": Peer(address=str(operator), **peer) if operator else None,
            "stranger": Peer(address=str(stranger), **peer),
        }
    finally:
        docker("network", "disconnect", "--force", network, nginx.name, check=False)
        docker("network", "rm", network, check=False)


def need(peers: dict, *names: str) -> None:
    for name in names:
        if peers[name] is None:
            pytest.skip(f"no {name} peer: E2E_EXPECT has no range for it")


def logged_address(stack: Stack, path: str) -> str:
    """The client address nginx's access log gives the request for `path` (a unique one)."""
    nginx = stack.service("nginx")

    def line() -> str | None:
        found = [ln for ln in nginx.logs(tail=2000).splitlines() if f" {path} " in ln]
        return found[-1] if found else None

    # A buffered access log is written at least every 5 s.
    found = wait_until(line, timeout=20, what=f"nginx's log line for {path}")
    return found.split()[0]


def documentation_address() -> str:
    """A fresh client address (TEST-NET-3) no earlier run has counted against a limit."""
    return f"203.0.113.{secrets.randbelow(254) + 1}"


# --- the client's address ------------------------------------------------------------------------


def test_this_hosts_forwarded_for_is_not_believed(stack: Stack):
    """This host is no balancer in any scenario: what it claims in X-Forwarded-For is ignored."""
    path = f"/e2e-{unique('xff')}"
    stack.get(
        path,
        headers={"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"},
        allow_redirects=False,
    )
    assert logged_address(stack, path) != "203.0.113.9"


def test_a_balancer_is_believed_about_its_clients_address(stack: Stack, peers):
    need(peers, "balancer")
    path = f"/e2e-{unique('via-balancer')}"
    client = documentation_address()
    # The client's own claim (left) is not the balancer's: the rightmost untrusted one counts.
    peers["balancer"].get(path, **{"X-Forwarded-For": f"198.51.100.1, {client}"})
    assert logged_address(stack, path) == client


def test_a_stranger_is_not_believed_about_its_address(stack: Stack, peers):
    path = f"/e2e-{unique('via-stranger')}"
    peers["stranger"].get(path, **{"X-Forwarded-For": "203.0.113.10", "X-Real-IP": "203.0.113.10"})
    assert logged_address(stack, path) == peers["stranger"].address


def login_posts(peer: Peer, addresses: list[str | None]) -> list[int]:
    """One login POST per entry (X-Forwarded-For: that address, or none), all from `peer`;
    without a CSRF token the app refuses each cheaply (403), nginx's limit with 429."""
    requests = [
        {
            "method": "POST",
            "path": "/accounts/login/",
            "body": "username=nobody&password=wrong",
            "headers": {
                "Content-Type": "application/x-www-form-urlencoded",
                **({"X-Forwarded-For": address} if address else {}),
            },
        }
        for address in addresses
    ]
    return [answer.status for answer in peer.send(*requests)]


def test_the_login_limit_counts_each_client_of_a_balancer_apart(stack: Stack, peers):
    need(peers, "balancer")
    burst = int(stack.expect.get("login_limit_burst", 5))
    if not int(stack.expect.get("login_limit_per_minute", 10)):
        pytest.skip("no login limit in this scenario")
    flooder = documentation_address()
    bystander = next(a for a in iter(documentation_address, None) if a != flooder)
    statuses = login_posts(peers["balancer"], [flooder] * (burst + 4) + [bystander])
    assert 429 in statuses[:-1], f"{burst + 4} login POSTs of one client never limited: {statuses}"
    assert statuses[-1] != 429, (
        f"another client behind the same balancer was refused with the flooder: {statuses}"
    )


def test_a_stranger_cannot_escape_the_login_limit_by_claiming_addresses(stack: Stack, peers):
    burst = int(stack.expect.get("login_limit_burst", 5))
    if not int(stack.expect.get("login_limit_per_minute", 10)):
        pytest.skip("no login limit in this scenario")
    statuses = login_posts(peers["stranger"], [documentation_address() for _ in range(burst + 4)])
    assert 429 in statuses, f"login POSTs claiming other addresses were never limited: {statuses}"


# --- the scheme ----------------------------------------------------------------------------------


def public_scheme(stack: Stack) -> str:
    scheme = stack.expect.get("public_scheme", "auto")
    return scheme if scheme != "auto" else ("https" if stack.tls else "http")


def test_the_balancers_word_for_the_scheme_is_the_apps(stack: Stack, peers):
    """The balancer ended TLS: the app serves the page (no redirect), with Secure cookies and
    HSTS. Over TLS to nginx itself, the balancer saying "http" is believed as well."""
    need(peers, "balancer")
    if public_scheme(stack) != "https":
        pytest.skip("the site is not https")
    answer = peers["balancer"].get("/accounts/login/", **{"X-Forwarded-Proto": "https"})
    assert answer.status == 200, answer
    cookies = answer.all("Set-Cookie")
    assert cookies, answer
    assert all("; Secure" in cookie for cookie in cookies), cookies
    if int(stack.expect.get("hsts_max_age", 0)) > 0:
        assert answer.header("Strict-Transport-Security") == (
            f"max-age={stack.expect['hsts_max_age']}; includeSubDomains"
        ), answer
    if stack.tls:
        said_http = peers["balancer"].get("/accounts/login/", **{"X-Forwarded-Proto": "http"})
        assert said_http.status == 301, said_http
        assert said_http.header("Location").startswith("https://"), said_http


def test_a_strangers_word_for_the_scheme_is_ignored(stack: Stack, peers):
    if public_scheme(stack) != "https":
        pytest.skip("the site is not https")
    claim = "http" if stack.tls else "https"
    answer = peers["stranger"].get("/accounts/login/", **{"X-Forwarded-Proto": claim})
    if stack.tls:  # it spoke https to nginx: that is what the app is told
        assert answer.status == 200, answer
    else:  # plain HTTP it was: the app sends it to the https site
        assert answer.status == 301, answer
        assert answer.header("Location") == f"https://{peers['stranger'].host}/accounts/login/"
        assert answer.header("Strict-Transport-Security") is None, answer


def websocket_handshake(peer: Peer, origin: str, **headers: str) -> int:
    return peer.send(
        {
            "path": f"/ws/chat/{unique('proxy')}/?nick=peer",
            "headers": {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
                "Origin": origin,
                **headers,
            },
        }
    )[0].status


def test_the_websocket_origin_check_uses_the_balancers_scheme(stack: Stack, peers):
    need(peers, "balancer")
    if public_scheme(stack) != "https":
        pytest.skip("the site is not https")
    balancer = peers["balancer"]
    https = {"X-Forwarded-Proto": "https"}
    # A page of the https site opens its socket; another site's page still cannot.
    assert websocket_handshake(balancer, f"https://{balancer.host}", **https) == 101
    assert websocket_handshake(balancer, "https://evil.example", **https) == 403


# --- the admin and /readyz -----------------------------------------------------------------------


def admin_host(stack: Stack, peers) -> str:
    return stack.expect.get("admin_host") or peers["stranger"].host


def test_the_admin_refuses_a_stranger(stack: Stack, peers):
    answer = peers["stranger"].get("/admin/login/", Host=admin_host(stack, peers))
    assert answer.status == 403, answer
    assert peers["stranger"].get("/readyz").status == 403


def test_the_admin_answers_an_allowed_address_directly_or_through_the_balancer(stack: Stack, peers):
    need(peers, "operator", "balancer")
    forwarded = {"X-Forwarded-Proto": public_scheme(stack)}
    host = admin_host(stack, peers)
    # Directly, its plain HTTP is not https whatever it says: the app sends it to the https site.
    direct = 301 if public_scheme(stack) == "https" and not stack.tls else 200
    assert peers["operator"].get("/admin/login/", Host=host, **forwarded).status == direct
    assert peers["operator"].get("/readyz").status == 200
    # The balancer itself is not an operator, but the operator behind it is.
    assert peers["balancer"].get("/admin/login/", Host=host, **forwarded).status == 403
    through = peers["balancer"].get(
        "/admin/login/", Host=host, **{**forwarded, "X-Forwarded-For": peers["operator"].address}
    )
    assert through.status == 200, through


def test_metrics_answer_allowed_addresses_only(stack: Stack, peers):
    if not stack.expect.get("metrics_enabled"):
        pytest.skip("djchat_metrics_enabled is off in this scenario")
    assert peers["stranger"].get("/metrics").status == 403
    need(peers, "operator")
    allowed = [ipaddress.ip_network(r) for r in stack.expect.get("metrics_allowed_addresses", [])]
    if not any(ipaddress.ip_address(peers["operator"].address) in r for r in allowed):
        pytest.skip("the operator peer is outside djchat_metrics_allowed_addresses")
    direct = 301 if public_scheme(stack) == "https" and not stack.tls else 200
    answer = peers["operator"].get("/metrics", **{"X-Forwarded-Proto": public_scheme(stack)})
    assert answer.status == direct, answer


def test_readyz_answers_the_balancers_health_checks(stack: Stack, peers):
    need(peers, "balancer")
    answer = peers["balancer"].get("/readyz")
    assert answer.status == 200, answer


def test_the_admin_answers_this_host(stack: Stack):
    host = stack.expect.get("admin_host") or urlsplit(stack.base_url).hostname
    port = urlsplit(stack.base_url).port
    response = stack.get(
        "/admin/login/",
        headers={"Host": f"{host}:{port}", "X-Forwarded-Proto": public_scheme(stack)},
        allow_redirects=False,
    )
    if public_scheme(stack) == "https" and not stack.tls:
        # nginx lets this host through, but it is no balancer: the app sends its plain HTTP
        # to the https site.
        assert response.status_code == 301, response.status_code
    else:
        assert response.status_code == 200, response.status_code


def test_the_admin_is_not_on_the_sites_other_names(stack: Stack):
    admin = stack.expect.get("admin_host")
    others = [name for name in stack.expect.get("server_names") or [] if name != admin]
    if not admin or not others:
        pytest.skip("no djchat_admin_host, or no other server name")
    port = urlsplit(stack.base_url).port
    response = stack.get("/admin/login/", headers={"Host": f"{others[0]}:{port}"})
    assert response.status_code == 404, response.status_code


# --- what the app says about itself --------------------------------------------------------------


def test_responses_name_the_replica_never_the_container_id(stack: Stack, room: str):
    ids = {c.attrs["Id"][:12] for c in stack.containers()}
    served = stack.get("/readyz").headers.get("X-Served-By", "")
    health = stack.get("/healthz").json()
    with stack.chat(room, nick="replica") as client:
        history = client.served_by
    seen = {"X-Served-By": served, "healthz host": health["host"], "served_by": history}
    assert not [where for where, value in seen.items() if any(i in value for i in ids)], seen
    asgi = {c.service for c in stack.services(r"asgi\d*")}
    assert re.fullmatch(r"wsgi/wsgi", served), seen
    assert health["host"] == "wsgi", seen
    assert history in asgi, seen
