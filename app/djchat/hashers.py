"""Django's PBKDF2 password hasher, computed off the gevent hub.

A PBKDF2 hash (1,000,000 iterations, Django 5.2's default) is about 0.3 s of CPU. In a gevent
worker (gunicorn's default worker class here) that CPU time runs on the hub: every other request
of the worker, health checks included, waits for each login, sign-up or password change. hashlib
releases the GIL while it hashes, so the same work in gevent's native thread pool leaves the hub
free. Hashes and their format are Django's own ("pbkdf2_sha256$..."): nothing is rehashed.
"""

from __future__ import annotations

from functools import partial

from django.contrib.auth import hashers


def _on_gevent_hub() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # not installed: no hub to keep free
        return False
    return monkey.is_module_patched("threading")


class PBKDF2PasswordHasher(hashers.PBKDF2PasswordHasher):
    def encode(self, password, salt, iterations=None):
        if _on_gevent_hub():
            from gevent import get_hub

            return get_hub().threadpool.apply(partial(super().encode, password, salt, iterations))
        return super().encode(password, salt, iterations)
