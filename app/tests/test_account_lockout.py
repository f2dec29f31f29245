"""Guessing one account's password (django-axes, per account): the ACCOUNT_LOCKOUT_FAILURES-th
failed login in a row locks the account, and it refuses every login, the right password included,
from any address, until ACCOUNT_LOCKOUT_SECONDS have passed; other accounts are not affected."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)

RIGHT = "correct horse 42"  # the `user` fixture's


def log_in(username: str, password: str, address: str = "203.0.113.7") -> int:
    browser = Client(REMOTE_ADDR=address)
    response = browser.post("/accounts/login/", {"username": username, "password": password})
    return response.status_code


@pytest.fixture
def lockout(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    return settings


def test_an_account_is_locked_after_the_failures_whatever_the_address(
    user, django_user_model, lockout
):
    django_user_model.objects.create_user(username="Bob", password=RIGHT)

    statuses = [log_in("Alice", f"guess {n}", address=f"198.51.100.{n}") for n in range(3)]

    assert statuses == [200, 200, 429]  # the form again with its error, then the lock
    assert log_in("Alice", RIGHT, address="192.0.2.1") == 429
    assert log_in("Bob", RIGHT) == 302  # another account logs in as usual


def test_the_lock_ends_after_the_lockout_time_and_a_success_resets_the_count(user, lockout):
    for n in range(3):
        log_in("Alice", f"guess {n}")
    assert log_in("Alice", RIGHT) == 429

    time.sleep(2.5)

    assert log_in("Alice", RIGHT) == 302
    assert [log_in("Alice", f"guess {n}") for n in range(2)] == [200, 200]
    assert log_in("Alice", RIGHT) == 302  # two failures after a success are not three


def test_the_admin_login_is_counted_too(user, lockout):
    browser = Client()
    for n in range(3):
        browser.post("/admin/login/", {"username": "Alice", "password": f"guess {n}"})

    assert log_in("Alice", RIGHT) == 429
