from channels.security.websocket import WebsocketDenier
from django.urls import re_path

from chat.consumers import ChatConsumer
from chat.handshake import ChatAdmissionMiddleware

# The room segment is matched loosely and validated at admission, so a bad name is refused (and
# logged) at the handshake instead of failing as "no route found".
websocket_urlpatterns = [
    re_path(r"^ws/chat/(?P<room>[^/]+)/$", ChatAdmissionMiddleware(ChatConsumer.as_asgi())),
    # Any other path is refused at the handshake (403) instead of failing in the router (500).
    re_path(r"", WebsocketDenier.as_asgi()),
]
