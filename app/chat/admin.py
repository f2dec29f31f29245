from django.contrib import admin

from chat.models import Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at", "last_message_at")
    search_fields = ("name",)
    ordering = ("-last_message_at",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "nick", "text", "created_at", "author")
    list_filter = ("room",)
    search_fields = ("nick", "text")
    raw_id_fields = ("room", "author")
    list_select_related = ("room", "author")
