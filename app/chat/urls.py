from django.urls import path, register_converter

from chat import views
from chat.converters import RoomNameConverter

register_converter(RoomNameConverter, "room")

urlpatterns = [
    path("", views.home, name="home"),
    path("r/<room:room>/", views.room, name="room"),
    path("api/rooms/<room:room>/messages", views.messages_api, name="messages_api"),
]
