from django.urls import re_path

from chat.consumers import ChatConsumer

# The room segment is matched loosely and validated by the consumer, so a bad name is refused (and
# logged) at the handshake instead of failing as "no route found".
websocket_urlpatterns = [
    re_path(r"^ws/chat/(?P<room>[^/]+)/$", ChatConsumer.as_asgi()),
]
