"""Typed readers for deploy-time settings taken from the environment.

Every variable NAME may instead be given as NAME_FILE, the path of a file whose content is the
value: that is how secrets reach the containers (files mounted read-only, never visible in
`docker inspect`). Giving both is an error rather than a silent precedence rule, so a stale
variable cannot shadow a rotated secret file.

This module imports nothing from Django's settings machinery, so gunicorn.conf.py can use it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from djchat.bounds import INTEGERS

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def env_raw(name: str) -> str | None:
    """NAME's value, or the content of the file NAME_FILE points at, or None if neither is set."""
    file_name = f"{name}_FILE"
    direct = os.environ.get(name)
    path = os.environ.get(file_name)
    if direct is not None and path is not None:
        raise ImproperlyConfigured(f"Set {name} or {file_name}, not both.")
    if path is None:
        return direct
    try:
        # Files written by editors or `echo` end with a newline that is never part of a secret.
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise ImproperlyConfigured(
            f"{file_name}={path} cannot be read: {error.strerror}."
        ) from error


def env_str(name: str, default: str | None = None) -> str | None:
    value = env_raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = env_raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false).")


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    value = env_raw(name)
    if value is None or not value.strip():
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and maximum is not None:
        accepted = f" ({name} must be between {minimum} and {maximum})"
    else:
        accepted = ""
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}{accepted}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum of {maximum}{accepted}.")
    return number


def env_bounded(name: str, default: int | None = None) -> int:
    """An integer setting of djchat.bounds.INTEGERS: its declared default (or `default`) when
    unset, refused outside its declared range."""
    bound = INTEGERS[name]
    return env_int(
        name,
        bound.default if default is None else default,
        minimum=bound.minimum,
        maximum=bound.maximum,
    )


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; blanks around items and empty items are dropped."""
    value = env_raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: Iterable[str]) -> str:
    """One of `choices`, case-insensitive; blank means the default."""
    value = env_raw(name)
    if value is None or not value.strip():
        return default
    lowered = value.strip().lower()
    allowed = list(choices)
    if lowered not in allowed:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(allowed)}.")
    return lowered
