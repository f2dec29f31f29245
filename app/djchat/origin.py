"""Origin check for WebSocket handshakes: the same rule as Django's CSRF Origin check, logged.

WebSockets are not covered by CSRF protection; this check is what stops another site's page from
opening a socket with a visitor's session cookie (cross-site WebSocket hijacking). A handshake is
accepted when its Origin is the site the handshake was sent to (scheme, host and port: what a page
of this site sends) or one of CSRF_TRUSTED_ORIGINS, as Django's CsrfViewMiddleware accepts a form.
The Host must be one of ALLOWED_HOSTS, and https is what the proxy says it was
(SECURE_PROXY_SSL_HEADER) when Django is told to trust it.

Channels' AllowedHostsOriginValidator matched the Origin's host name only: any scheme and any port
of an allowed host passed (a page on http://localhost:3000 could open sockets to the site on
:8080), and it closed the handshake without a word, which in production looks like "WebSockets
are broken" with nothing in any log. Every refusal here is logged with the offending Origin.
"""

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.http import is_same_domain

from chat.handshake import refuse

logger = logging.getLogger(__name__)


def allowed_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:  # the same fallback Django applies to Host headers
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def is_secure(headers: dict[bytes, bytes], scope) -> bool:
    """Whether the client spoke TLS: request.is_secure() for a WebSocket handshake."""
    if settings.SECURE_PROXY_SSL_HEADER:
        name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        header = name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin1")
        value = headers.get(header, b"").decode("latin1").split(",", 1)[0].strip()
        return value == secure_value
    return scope.get("scheme") in ("wss", "https")


def own_origin(headers: dict[bytes, bytes], scope) -> str | None:
    """scheme://host[:port] of the site the handshake was sent to, or None if its Host is not one
    of ALLOWED_HOSTS."""
    host = headers.get(b"host", b"").decode("latin1").lower()
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, allowed_hosts()):
        return None
    return f"{'https' if is_secure(headers, scope) else 'http'}://{host}"


def _no_response(request):  # the middleware is only asked for its trusted origins
    raise NotImplementedError


def is_trusted(origin: str) -> bool:
    """One of CSRF_TRUSTED_ORIGINS, wildcard subdomains ("https://*.example.com") included: the
    sets Django's CsrfViewMiddleware matches a form's Origin against, matched the same way."""
    # A new one each time: its sets are read from the settings on first use (tests change them).
    csrf = CsrfViewMiddleware(get_response=_no_response)
    if origin in csrf.allowed_origins_exact:
        return True
    parts = urlsplit(origin)
    return any(
        is_same_domain(parts.netloc, pattern)
        for pattern in csrf.allowed_origin_subdomains.get(parts.scheme, ())
    )


def refusal_reason(scope) -> str | None:
    """Why the handshake must be refused, or None when its Origin is allowed."""
    headers = dict(scope.get("headers", []))
    raw = headers.get(b"origin")
    if raw is None:
        return "no Origin header"
    origin = raw.decode("latin1").lower()
    own = own_origin(headers, scope)
    if origin == own or is_trusted(origin):
        return None
    site = own or f"Host {headers.get(b'host', b'').decode('latin1')!r}, not in ALLOWED_HOSTS"
    return f"Origin {origin!r} is not allowed: not this site ({site}), not in CSRF_TRUSTED_ORIGINS"


class OriginCheck:
    """ASGI middleware in front of the WebSocket routes: refuses a handshake whose Origin is not
    allowed (HTTP 403), with the reason in the log."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("The Origin check only applies to WebSocket connections")
        reason = refusal_reason(scope)
        if reason is None:
            return await self.application(scope, receive, send)
        client = scope.get("client") or ("?", 0)
        logger.warning(
            "Refused WebSocket handshake for %r from %s: %s", scope.get("path"), client[0], reason
        )
        await refuse(receive, send)
