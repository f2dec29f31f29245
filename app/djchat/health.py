"""Liveness and readiness endpoints, answered alike by gunicorn and daphne."""

import logging
import secrets

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from djchat.middleware import HOSTNAME, DualModeMiddleware, process_type

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request):
    """The process is up and answering; says nothing about its dependencies."""
    return JsonResponse({"status": "ok", "process": process_type(request), "host": HOSTNAME})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_redis() -> None:
    # A round trip through the same cache client the application uses, password and all.
    token = secrets.token_hex(8)
    cache.set("readyz", token, timeout=10)
    if cache.get("readyz") is None:
        raise RuntimeError("Redis accepted a write but returned nothing")


READINESS_CHECKS = {"database": _check_database, "redis": _check_redis}


@never_cache
@require_GET
def readyz(request):
    """Database and Redis answer; 503 naming the failing check otherwise."""
    results = {}
    for name, check in READINESS_CHECKS.items():
        try:
            check()
        except Exception:
            # The probe's body is public; the reason goes to the log, where operators look.
            logger.exception("Readiness check %r failed", name)
            results[name] = "error"
        else:
            results[name] = "ok"
    healthy = all(result == "ok" for result in results.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": results},
        status=200 if healthy else 503,
    )


HEALTH_VIEWS = {"/healthz": healthz, "/readyz": readyz}


class HealthCheckMiddleware(DualModeMiddleware):
    """Answers /healthz and /readyz before Host validation and the HTTPS redirect.

    Container health checks call the process directly (Host: 127.0.0.1:8000, plain HTTP), which
    ALLOWED_HOSTS and SECURE_SSL_REDIRECT would otherwise turn into a 400 or a 301 in production.
    """

    def __call__(self, request):
        view = HEALTH_VIEWS.get(request.path)
        if self.async_mode:
            return self._acall(request, view)
        return view(request) if view else self.get_response(request)

    async def _acall(self, request, view):
        if view:
            return await sync_to_async(view)(request)
        return await self.get_response(request)
