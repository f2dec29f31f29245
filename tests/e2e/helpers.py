"""What every end-to-end test shares, in one place: where the stack is (Stack), a wait-until,
HTTP sessions, chat clients of the stack (Stack.chat: tests/chatclient.py, the repository's one
chat client) and a look at the project's containers through docker.

The tests only ever talk to the ports nginx publishes on 127.0.0.1 (never to container
addresses); docker is used to inspect and operate the project, not to reach into it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3

from chatclient import ChatClient, SyncChatClient

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]

# The asgi services are asgi1..asgiN (one container each); a plain "asgi" service scaled to N
# containers is recognised too.
ASGI_SERVICE = re.compile(r"^asgi\d*$")


# --- waiting -------------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.5,
    what: str = "the condition",
) -> T:
    """Call `condition` until it returns something truthy (returned) or `timeout` passes.

    An exception raised by `condition` counts as "not yet"; the last value or exception is in the
    AssertionError raised at the deadline, so a failure says what was still wrong.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = condition()
        except Exception as error:
            last = error
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}; last result: {last!r}")
        time.sleep(interval)


def unique(prefix: str) -> str:
    """A fresh name (room, nick, username) so tests never see each other's data."""
    return f"{prefix}-{secrets.token_hex(4)}"


# --- the stack under test ------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """The deployed stack, as the scenario's verify describes it in E2E_* variables."""

    base_url: str  # the public site: https://... when TLS is on
    http_url: str  # plain HTTP (the same as base_url without TLS)
    project: str  # compose project name
    project_dir: Path  # djchat_project_dir on this host
    expect: dict[str, Any] = field(default_factory=dict)  # settings the scenario deployed
    disruptive: bool = False  # restart the stack, re-converge, create accounts
    reconverge_command: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls) -> Stack:
        base_url = os.environ.get("E2E_BASE_URL", "http://127.0.0.1:8080").rstrip("/")
        project = os.environ.get("E2E_COMPOSE_PROJECT", "djchat")
        return cls(
            base_url=base_url,
            http_url=os.environ.get("E2E_HTTP_URL", base_url).rstrip("/"),
            project=project,
            project_dir=Path(os.environ.get("E2E_PROJECT_DIR", f"/srv/{project}")),
            expect=json.loads(os.environ.get("E2E_EXPECT") or "{}"),
            disruptive=os.environ.get("E2E_DISRUPTIVE", "") in ("1", "true", "yes"),
            reconverge_command=tuple(shlex.split(os.environ.get("E2E_RECONVERGE_COMMAND", ""))),
        )

    # --- addresses ---------------------------------------------------------------------------

    @property
    def tls(self) -> bool:
        return self.base_url.startswith("https:")

    @property
    def origin(self) -> str:
        """The Origin a browser on the site sends; the app refuses WebSockets from others."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def ws_base_url(self) -> str:
        """ws://host:port (wss:// with TLS): where the chat's WebSockets are."""
        return f"{'wss' if self.tls else 'ws'}://{urlsplit(self.base_url).netloc}"

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS client context for wss://: the certificate may be self-signed (the TLS tests
        check separately that it is the one the role installed)."""
        if not self.tls:
            return None
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    # --- HTTP --------------------------------------------------------------------------------

    def session(self) -> requests.Session:
        """A requests session for the site: no proxies from the environment, self-signed
        certificates accepted (see ssl_context)."""
        session = requests.Session()
        session.trust_env = False
        if self.tls:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            session.verify = False
        return session

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        with self.session() as session:
            return session.get(self.url(path), timeout=kwargs.pop("timeout", 15), **kwargs)

    def wait_ready(self, timeout: float = 120.0, websocket: bool = True) -> None:
        """Until nginx answers /readyz with 200 and, with `websocket`, a WebSocket gets its
        history frame."""

        def ready() -> bool:
            response = self.get("/readyz", timeout=5)
            if response.status_code != 200:
                return False
            if websocket:
                with self.chat(unique("e2e-ready"), nick="probe", timeout=5) as client:
                    return client.served_by != ""
            return True

        wait_until(ready, timeout=timeout, interval=1.0, what=f"{self.base_url} to be ready")

    # --- WebSocket ---------------------------------------------------------------------------

    def chat(
        self,
        room: str,
        nick: str | None = None,
        since: int | None = None,
        cookies: requests.cookies.RequestsCookieJar | None = None,
        timeout: float = 10.0,
        origin: str | None = None,
    ) -> SyncChatClient:
        """Join `room` (with the Origin of the site, or `origin`) and return a client holding the
        history frame; a refused handshake raises websockets' InvalidStatus."""
        client = self.chat_client(room, nick, cookies=cookies, timeout=timeout, origin=origin)
        chat = SyncChatClient(client)
        chat.connect(since)
        return chat

    def chat_client(
        self,
        room: str,
        nick: str | None = None,
        cookies: requests.cookies.RequestsCookieJar | None = None,
        timeout: float = 10.0,
        origin: str | None = None,
    ) -> ChatClient:
        """The asyncio client of `chat`, not connected yet."""
        headers = {}
        if cookies:
            headers["Cookie"] = "; ".join(f"{cookie.name}={cookie.value}" for cookie in cookies)
        return ChatClient(
            self.ws_base_url,
            room,
            nick,
            origin=origin or self.origin,
            headers=headers,
            ssl=self.ssl_context,
            timeout=timeout,
        )

    # --- docker ------------------------------------------------------------------------------

    def containers(self) -> list[Container]:
        return project_containers(self.project)

    def services(self, pattern: str | re.Pattern[str]) -> list[Container]:
        """Running containers of the services whose name matches `pattern` entirely."""
        return [
            container
            for container in self.containers()
            if re.fullmatch(pattern, container.service) and container.running
        ]

    def service(self, name: str) -> Container:
        matches = self.services(re.escape(name))
        assert len(matches) == 1, (
            f"expected one running {name!r} container in project {self.project}, "
            f"found {[container.name for container in matches]}"
        )
        return matches[0]

    def asgi_hostnames(self) -> set[str]:
        return {container.hostname for container in self.services(ASGI_SERVICE)}

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return docker("compose", "-p", self.project, *args, timeout=timeout)

    def logs_hint(self, service: str = "") -> str:
        return f"(see `docker compose -p {self.project} logs {service}`)".replace(" )", ")")

    def playbook(
        self, name: str, *extra: str, timeout: float = 300, check: bool = True
    ) -> Playbook:
        """Run playbooks/<name> as the scenario converges (E2E_RECONVERGE_COMMAND with <name> for
        site.yml: same inventory and Ansible), without colours; its output and changed count.
        With check, it must succeed."""
        *command, site = self.reconverge_command
        result = subprocess.run(
            [*command, str(Path(site).with_name(name)), *extra],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
        )
        assert result.returncode == 0 or not check, (
            f"{name} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
        )
        changed = sum(int(n) for n in re.findall(r"\bchanged=(\d+)", result.stdout))
        return Playbook(output=result.stdout, changed=changed, returncode=result.returncode)


def said(playbook: Playbook) -> str:
    """A play's output with its line wrapping undone (the callback folds long messages)."""
    return " ".join(playbook.output.split())


@dataclass
class Playbook:
    output: str  # stdout: the tasks' results and the recap
    changed: int  # the recap's changed count, over every host
    returncode: int


# --- accounts ------------------------------------------------------------------------------------

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def post_form(
    session: requests.Session, stack: Stack, path: str, fields: dict[str, str], pause: float = 0
) -> requests.Response:
    """GET the form (CSRF cookie + token), wait `pause` s, then POST it as a browser does."""
    url = stack.url(path)
    form = session.get(url, timeout=15)
    assert form.status_code == 200, f"GET {path}: {form.status_code}"
    token = CSRF_FIELD.search(form.text)
    assert token, f"no csrfmiddlewaretoken in {path}"
    time.sleep(pause)
    return session.post(
        url,
        data={"csrfmiddlewaretoken": token.group(1), **fields},
        headers={"Referer": url, "Origin": stack.origin},
        allow_redirects=False,
        timeout=15,
    )


def sign_up(stack: Stack, prefix: str = "user", pause: float = 0) -> tuple[str, str]:
    """A new account made through the sign-up form: (username, password)."""
    username, password = unique(prefix)[:30], secrets.token_urlsafe(16)
    with stack.session() as session:
        response = post_form(
            session,
            stack,
            "/accounts/signup/",
            {"username": username, "password1": password, "password2": password},
            pause,
        )
    assert response.status_code == 302, (
        f"sign-up answered {response.status_code}, expected a redirect: {response.text[:2000]}"
    )
    return username, password


def logged_in_session(
    stack: Stack, username: str, password: str, pause: float = 0
) -> requests.Session:
    session = stack.session()
    response = post_form(
        session, stack, "/accounts/login/", {"username": username, "password": password}, pause
    )
    assert response.status_code == 302, f"login answered {response.status_code}"
    assert any("session" in cookie.name for cookie in session.cookies), session.cookies
    return session


# --- docker --------------------------------------------------------------------------------------


def docker(
    *args: str, timeout: float = 120, check: bool = True, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI (`input_text` on its stdin); a failure raises with its output so the
    test report shows it."""
    result = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=input_text,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`docker {shlex.join(args)}` exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass(frozen=True)
class Container:
    """The parts of `docker inspect` the tests look at."""

    attrs: dict[str, Any]

    @property
    def name(self) -> str:
        return self.attrs["Name"].lstrip("/")

    @property
    def service(self) -> str:
        return self.attrs["Config"]["Labels"].get("com.docker.compose.service", "")

    @property
    def hostname(self) -> str:
        return self.attrs["Config"]["Hostname"]

    @property
    def command(self) -> list[str]:
        """What the container runs: entrypoint and command."""
        config = self.attrs["Config"]
        return [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]

    @property
    def running(self) -> bool:
        return self.attrs["State"]["Running"]

    @property
    def health(self) -> str | None:
        return (self.attrs["State"].get("Health") or {}).get("Status")

    @property
    def published_ports(self) -> list[tuple[str, str, str]]:
        """(container port, host address, host port) for every port published on the host."""
        published = []
        for port, bindings in (self.attrs["HostConfig"].get("PortBindings") or {}).items():
            published += [(port, b.get("HostIp") or "", b.get("HostPort") or "") for b in bindings]
        for port, bindings in (self.attrs["NetworkSettings"].get("Ports") or {}).items():
            published += [
                (port, b.get("HostIp", ""), b.get("HostPort", "")) for b in bindings or []
            ]
        return sorted(set(published))

    def exec(self, *command: str, timeout: float = 60, check: bool = True):
        return docker("exec", self.name, *command, timeout=timeout, check=check)

    def logs(self, tail: int | None = None) -> str:
        args = ["logs", *(["--tail", str(tail)] if tail else []), self.name]
        result = docker(*args)
        return result.stdout + result.stderr

    def top(self) -> list[dict[str, str]]:
        """The container's processes (host pids) as rows of pid, ppid and command line."""
        lines = docker("top", self.name, "-eo", "pid,ppid,args").stdout.splitlines()
        rows = []
        for line in lines[1:]:
            pid, ppid, args = line.split(None, 2)
            rows.append({"pid": pid, "ppid": ppid, "args": args})
        return rows


def project_containers(project: str) -> list[Container]:
    ids = docker(
        "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={project}"
    ).stdout.split()
    if not ids:
        return []
    return [Container(attrs) for attrs in json.loads(docker("inspect", *ids).stdout)]
