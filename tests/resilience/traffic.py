"""Background traffic for the resilience tests, built on tests/e2e/helpers.py (Stack,
wait_until) and the chat client (tests/chatclient.py): chatters that keep talking while something
hostile or broken happens, and count what they sent and what reached them. Loops are bounded in
count and time; traffic goes only to the port nginx publishes on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import subprocess
import threading
import time
from dataclasses import dataclass, field

import requests
from websockets.exceptions import ConnectionClosed

from chatclient import TRANSIENT, ChatClient, background_loop, run_blocking
from helpers import REPO_ROOT, Stack, unique, wait_until


@dataclass
class Chatter:
    """One member that says something every `interval` seconds and records every message id and
    text it receives. When its connection drops it resumes (backoff with jitter) with
    `since=<last id it has>`, as the protocol asks, and counts the reconnection. It runs as a
    task on the chat clients' background loop, so the test's own thread stays free."""

    stack: Stack
    room: str
    nick: str
    interval: float = 1.2
    sent: list[str] = field(default_factory=list)
    resent: int = 0
    received: dict[int, str] = field(default_factory=dict)
    reconnects: int = 0
    outage_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self.client: ChatClient = self.stack.chat_client(self.room, self.nick)
        self._task: concurrent.futures.Future | None = None

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> Chatter:
        run_blocking(self.client.connect(retry_for=60))
        self._record_history()
        self._task = asyncio.run_coroutine_threadsafe(self._run(), background_loop())
        return self

    def signal_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                self._task.result(timeout)
            except concurrent.futures.TimeoutError:
                raise AssertionError(f"{self.nick} did not stop within {timeout} s") from None
        run_blocking(self.client.close())

    # --- what it saw ------------------------------------------------------------------------

    @property
    def last_id(self) -> int:
        return max(self.received, default=0)

    def texts(self) -> set[str]:
        return set(self.received.values())

    def collect(self) -> None:
        """Resume once more with `since` (retrying) and record what comes; send nothing."""
        run_blocking(self._collect())

    # --- internals --------------------------------------------------------------------------

    def _record(self, frame: dict) -> None:
        if frame["type"] == "message":
            self.received[frame["id"]] = frame["text"]

    def _record_history(self) -> None:
        for message in self.client.history_messages:
            self._record(message)

    async def _collect(self) -> None:
        await self.client.resume(retry_for=60)
        self._record_history()
        await self.client.close()

    async def _reconnect(self) -> bool:
        started = time.monotonic()
        try:
            await self.client.resume(retry_for=180)
        except TRANSIENT as error:
            self.errors.append(f"{self.nick} could not reconnect: {error!r}")
            return False
        self.reconnects += 1
        self.outage_seconds.append(time.monotonic() - started)
        self._record_history()
        # At least once, without duplicates: what was sent but is not in the room's history
        # (the server went away before storing it) is sent again on the new connection. Should
        # that one drop too, the next read finds out and this happens again.
        with contextlib.suppress(ConnectionClosed, OSError):
            for text in [t for t in self.sent if t not in self.texts()]:
                await self.client.send({"type": "message", "text": text})
                self.resent += 1
        return True

    async def _run(self) -> None:
        client = self.client
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_at:
                    text = unique(f"{self.nick}-says")
                    await client.send({"type": "message", "text": text})
                    self.sent.append(text)
                    next_at = time.monotonic() + self.interval
                # Short reads, so that a stop is seen within 0.2 s.
                wait = min(0.2, max(0.0, next_at - time.monotonic()))
                self._record(await client.recv(timeout=wait))
            except TimeoutError:
                continue
            except (ConnectionClosed, OSError) as error:
                self.errors.append(repr(error))
                if self._stop.is_set() or not await self._reconnect():
                    return
        # What is still in flight: read until the room is quiet for a second.
        try:
            while True:
                self._record(await client.recv(timeout=1.0))
        except TimeoutError:
            pass
        except (ConnectionClosed, OSError) as error:
            self.errors.append(repr(error))


class Conversation:
    """A few chatters in one room. `finish()` stops them, lets each one resume once more with
    `since` to collect what was still in flight, and returns the figures: every message any of
    them sent must have reached every one of them."""

    def __init__(self, stack: Stack, size: int = 2, interval: float = 1.2, name: str = "talk"):
        self.stack = stack
        self.room = unique(f"res-{name}")
        self.chatters = [
            Chatter(stack, self.room, f"{name}{n}", interval=interval) for n in range(size)
        ]
        self.started = 0.0

    def __enter__(self) -> Conversation:
        self.started = time.monotonic()
        for chatter in self.chatters:
            chatter.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for chatter in self.chatters:
            chatter.signal_stop()
        for chatter in self.chatters:
            chatter.stop()

    def finish(self) -> dict[str, object]:
        # All fall silent at once, so that each one's last read ends a moment after the others.
        for chatter in self.chatters:
            chatter.signal_stop()
        for chatter in self.chatters:
            chatter.stop()
        # Messages whose echo was in flight when a connection dropped are in the database:
        # one last resume per chatter collects them, as a real client's reconnect would.
        # It retries like any reconnect (a handshake can fail right after a fault).
        for chatter in self.chatters:
            chatter.collect()
        sent = {text for chatter in self.chatters for text in chatter.sent}
        lost = {chatter.nick: sorted(sent - chatter.texts()) for chatter in self.chatters}
        figures = {
            "seconds": round(time.monotonic() - self.started, 1),
            "chatters": len(self.chatters),
            "messages_sent": len(sent),
            "messages_received": {c.nick: len(c.texts() & sent) for c in self.chatters},
            "messages_lost": sum(len(missing) for missing in lost.values()),
            "reconnects": sum(c.reconnects for c in self.chatters),
            "resent_after_reconnect": sum(c.resent for c in self.chatters),
            # Ids a connection skipped (the server must fill them in before going on).
            "id_gaps": sum(len(c.client.gaps) for c in self.chatters),
            "longest_outage_s": round(
                max((s for c in self.chatters for s in c.outage_seconds), default=0), 1
            ),
        }
        self.lost = lost
        self.errors = [error for chatter in self.chatters for error in chatter.errors]
        return figures

    def assert_nothing_lost(self, figures: dict[str, object]) -> None:
        assert figures["messages_sent"], "the conversation sent nothing"
        ids = {text: id_ for chatter in self.chatters for id_, text in chatter.received.items()}
        detail = {
            chatter.nick: {
                "missing_ids": sorted(ids.get(text, -1) for text in missing),
                "ids_received": len(chatter.received),
                "last_id": chatter.last_id,
                "id_gaps": chatter.client.gaps,
            }
            for chatter in self.chatters
            if (missing := self.lost[chatter.nick])
        }
        assert figures["messages_lost"] == 0, (
            f"messages lost: {self.lost} ({detail}); figures {figures}; connection errors "
            f"{self.errors[:5]} {self.stack.logs_hint()}"
        )


def wait_healthy(stack: Stack, services: set[str], timeout: float = 180) -> float:
    """Seconds until every named service has a running, healthy container."""
    started = time.monotonic()

    def healthy() -> bool:
        state = {c.service: (c.running, c.health) for c in stack.containers()}
        return all(
            state.get(s, (False, None))[0] and state[s][1] in (None, "healthy") for s in services
        )

    wait_until(healthy, timeout=timeout, interval=0.5, what=f"{sorted(services)} healthy")
    return time.monotonic() - started


class HttpProbe:
    """GETs `path` every `interval` seconds in a thread and records what came back: figures are
    requests sent and failed (anything but 200), and the longest run of failures in seconds.

    Like a browser, it reuses one keep-alive connection and, when a request on it fails before any
    answer came (the server closed the idle connection just as the request went out, as nginx
    does to idle keep-alive connections when it reloads), sends the GET once more on a new
    connection. Such retries are counted (`retried`); a request that fails again is a failure."""

    def __init__(self, stack: Stack, path: str = "/readyz", interval: float = 0.2):
        self.stack = stack
        self.path = path
        self.interval = interval
        self.results: list[tuple[float, str]] = []
        self.retried = 0
        self._pooled = False  # the last request left a keep-alive connection to reuse
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-probe", daemon=True)

    def __enter__(self) -> HttpProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _get(self, session: requests.Session) -> str:
        try:
            return str(session.get(self.stack.url(self.path), timeout=10).status_code)
        except requests.ConnectionError:
            if not self._pooled:
                raise
        # The kept-alive connection was closed under the request: once more, on a new one.
        self.retried += 1
        session.close()
        return str(session.get(self.stack.url(self.path), timeout=10).status_code)

    def _run(self) -> None:
        with self.stack.session() as session:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    outcome = self._get(session)
                    self._pooled = True
                except Exception as error:  # every failure is a data point
                    outcome = type(error).__name__
                    self._pooled = False
                self.results.append((started, outcome))
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def figures(self) -> dict[str, object]:
        failed = [(t, outcome) for t, outcome in self.results if outcome != "200"]
        longest, run_start, previous_failed = 0.0, None, False
        for t, outcome in self.results:
            if outcome != "200":
                run_start = t if not previous_failed else run_start
                previous_failed = True
            else:
                if previous_failed and run_start is not None:
                    longest = max(longest, t - run_start)
                previous_failed = False
        if previous_failed and run_start is not None:
            longest = max(longest, self.results[-1][0] - run_start)
        kinds: dict[str, int] = {}
        for _, outcome in failed:
            kinds[outcome] = kinds.get(outcome, 0) + 1
        return {
            "requests_sent": len(self.results),
            "requests_failed": len(failed),
            "retried": self.retried,
            "failures": kinds,
            "longest_failure_s": round(longest, 1),
        }


# --- converges under traffic ---------------------------------------------------------------------


def playbook(
    stack: Stack, name: str, *extra: str, expect_success: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run playbooks/<name> with the scenario's inventory (the converge command, another
    playbook) and `extra` arguments; assert it succeeded (or, with expect_success=False, failed)."""
    command = [*stack.reconverge_command]
    command[-1] = str(REPO_ROOT / "playbooks" / name)
    result = subprocess.run(
        [*command, *extra], capture_output=True, text=True, timeout=1500, check=False
    )
    assert (result.returncode == 0) == expect_success, (
        f"{name} {' '.join(extra)} exited {result.returncode}:\n"
        f"{result.stdout[-5000:]}\n{result.stderr[-2000:]}"
    )
    return result


def run_under_load(
    stack: Stack, name: str, *extra: str, expect_success: bool = True
) -> tuple[dict, dict, float, subprocess.CompletedProcess[str]]:
    """`playbook(...)` while an HttpProbe GETs / every 0.1 s and two chatters talk; asserts no
    message was lost. Returns the probe's and the chat's figures, the seconds the run took and
    the run itself."""
    with (
        HttpProbe(stack, path="/", interval=0.1) as probe,
        Conversation(stack, size=2, interval=1.0, name="deploy") as talk,
    ):
        time.sleep(3)
        started = time.monotonic()
        result = playbook(stack, name, *extra, expect_success=expect_success)
        seconds = time.monotonic() - started
        time.sleep(3)
        probe.stop()
        figures = talk.finish()
    talk.assert_nothing_lost(figures)
    return probe.figures(), figures, seconds, result
