"""Password guessing through nginx, as deployed (molecule/resilience/host_vars/localhost.yml):
the edge limits login, sign-up and admin-login POSTs per address (djchat_nginx_login_limit_*),
the app locks an account after djchat_account_lockout_failures failed logins (django-axes), and
neither stops anyone else: pages, WebSockets and other accounts go on. Every test prints what it
tried and what was refused."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from helpers import Stack, post_form, sign_up

LOGIN_RATE = 60  # djchat_nginx_login_limit_per_minute
LOGIN_BURST = 5  # djchat_nginx_login_limit_burst
FAILURES = 5  # djchat_account_lockout_failures (the role's default)
SPACING = 60 / LOGIN_RATE + 0.2  # seconds between POSTs that stay under the edge limit


def refill() -> None:
    """Wait until the address's bucket holds its whole burst again (earlier tests' POSTs)."""
    time.sleep((LOGIN_BURST + 1) * 60 / LOGIN_RATE)


def answered(response: requests.Response) -> str:
    """Who answered: the app (its responses name the process) or nginx itself."""
    by = "app" if "X-Served-By" in response.headers else "nginx"
    locked = " locked" if "Account locked" in response.text else ""
    return f"{by} {response.status_code}{locked}"


def log_in(stack: Stack, username: str, password: str) -> requests.Response:
    with stack.session() as session:
        fields = {"username": username, "password": password}
        return post_form(session, stack, "/accounts/login/", fields, pause=SPACING)


def test_guessing_one_accounts_password_locks_it_and_no_other(stack: Stack):
    refill()
    victim, victim_password = sign_up(stack, "abuse", pause=SPACING)
    bystander, bystander_password = sign_up(stack, "abuse", pause=SPACING)

    guesses = [answered(log_in(stack, victim, f"guess {n}")) for n in range(FAILURES)]
    own_credentials = answered(log_in(stack, victim, victim_password))
    other_account = answered(log_in(stack, bystander, bystander_password))

    print(
        f"\nlockout: {FAILURES} wrong passwords for one account -> {guesses};"
        f" then its own password -> {own_credentials}; another account -> {other_account}"
    )
    assert guesses == ["app 200"] * (FAILURES - 1) + ["app 429 locked"]
    assert own_credentials == "app 429 locked"
    assert other_account == "app 302"


def test_a_login_flood_from_one_address_is_refused_at_the_edge_while_the_site_serves(
    stack: Stack, room: str
):
    refill()
    attempts = 40

    def attempt(n: int) -> str:
        # No CSRF token: what reaches the app is refused there (403); nginx counts every POST.
        try:
            with stack.session() as session:
                response = session.post(
                    stack.url("/accounts/login/"),
                    data={"username": f"nobody{n}", "password": "guess"},
                    timeout=15,
                )
        except requests.RequestException as error:
            return type(error).__name__
        return answered(response)

    with stack.chat(room, nick="bystander") as bystander, ThreadPoolExecutor(16) as pool:
        started = time.monotonic()
        flood = pool.map(attempt, range(attempts))
        page = stack.get("/").status_code
        said = bystander.say("still here")["text"]
        results = Counter(flood)
        seconds = time.monotonic() - started

    reached_app = sum(count for result, count in results.items() if result.startswith("app"))
    print(
        f"\nlogin flood: {attempts} POSTs from one address in {seconds:.1f} s -> {dict(results)};"
        f" meanwhile / -> {page}, a chat message -> {said!r}"
    )
    assert results["nginx 429"] >= attempts - (LOGIN_BURST + 1 + int(seconds * LOGIN_RATE / 60))
    assert reached_app <= LOGIN_BURST + 1 + int(seconds * LOGIN_RATE / 60) + 1
    assert set(results) <= {"nginx 429", "app 403"}, results
    assert page == 200
    assert said == "still here"
