"""Origin check for WebSocket handshakes that says why it refused.

Channels' AllowedHostsOriginValidator closes the handshake without a word, which in production
looks like "WebSockets are broken" with nothing in any log. This one applies the same matching
rules, reads ALLOWED_HOSTS at each handshake, and logs every refusal with the offending Origin.

WebSockets are not covered by CSRF protection; this check is what stops another site's page from
opening a socket with a visitor's session cookie (cross-site WebSocket hijacking).
"""

import logging
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings

from chat.handshake import refuse

logger = logging.getLogger(__name__)


def allowed_origin_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:  # the same fallback Django applies to Host headers
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts


class LoggingAllowedHostsOriginValidator(OriginValidator):
    def __init__(self, application):
        # allowed_origins is a property here (read per handshake), so the parent's __init__,
        # which assigns it, is not called.
        self.application = application

    @property
    def allowed_origins(self) -> list[str]:
        return allowed_origin_hosts()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("The Origin check only applies to WebSocket connections")
        raw_origin = dict(scope.get("headers", [])).get(b"origin")
        origin = raw_origin.decode("latin1") if raw_origin is not None else None
        if self.valid_origin(urlparse(origin) if origin is not None else None):
            return await self.application(scope, receive, send)
        client = scope.get("client") or ("?", 0)
        reason = (
            "no Origin header"
            if origin is None
            else f"Origin {origin!r} is not allowed by ALLOWED_HOSTS {self.allowed_origins}"
        )
        logger.warning(
            "Refused WebSocket handshake for %r from %s: %s", scope.get("path"), client[0], reason
        )
        await refuse(receive, send)
