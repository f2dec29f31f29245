"""Response headers every page gets: which process served it, and a content security policy."""

import socket

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.handlers.asgi import ASGIRequest

HOSTNAME = socket.gethostname()

# Everything the pages load comes from this origin; no inline script runs (the room page passes
# its configuration as JSON data via json_script). A message that somehow reached the DOM as
# markup could still not execute. The admin is left to its own defaults.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def process_type(request) -> str:
    """Which server runs this request: "asgi" (daphne) or "wsgi" (gunicorn, the test client)."""
    return "asgi" if isinstance(request, ASGIRequest) else "wsgi"


def served_by(request) -> str:
    return f"{process_type(request)}/{HOSTNAME}"


class DualModeMiddleware:
    """A middleware that runs natively in both the sync (gunicorn) and the async (daphne) request
    paths: called from an async chain it is itself a coroutine function (async_mode)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)


class _ResponseHeaderMiddleware(DualModeMiddleware):
    """Adds headers to every response (add_headers)."""

    def __call__(self, request):
        if self.async_mode:
            return self._acall(request)
        response = self.get_response(request)
        self.add_headers(request, response)
        return response

    async def _acall(self, request):
        response = await self.get_response(request)
        self.add_headers(request, response)
        return response

    def add_headers(self, request, response) -> None:
        raise NotImplementedError


class ServedByMiddleware(_ResponseHeaderMiddleware):
    """X-Served-By: wsgi/<hostname> or asgi/<hostname>, to see load balancing at work."""

    def add_headers(self, request, response) -> None:
        response["X-Served-By"] = served_by(request)


class ContentSecurityPolicyMiddleware(_ResponseHeaderMiddleware):
    def add_headers(self, request, response) -> None:
        if request.path.startswith("/admin/"):
            return
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
