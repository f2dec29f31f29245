from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from chat.validation import NICK_MAX_LENGTH, ROOM_NAME_MAX_LENGTH, ROOM_NAME_PATTERN


class Room(models.Model):
    """Created by its first message; a room page can be opened before that."""

    name = models.CharField(
        max_length=ROOM_NAME_MAX_LENGTH,
        unique=True,
        validators=[RegexValidator(f"^{ROOM_NAME_PATTERN}$")],
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_message_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Message(models.Model):
    """One chat line. The primary key doubles as the message id clients resume from.

    Ids only grow, and chat.services.messages writes a room's messages one at a time, so within a
    room a larger id always means a later message.
    """

    room = models.ForeignKey(Room, related_name="messages", on_delete=models.CASCADE)
    # Kept even if the account is deleted: the nick records who said it at the time.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        related_name="chat_messages",
        on_delete=models.SET_NULL,
    )
    nick = models.CharField(max_length=NICK_MAX_LENGTH)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["room", "id"], name="chat_message_room_id")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.room_id} <{self.nick}> {self.text[:40]}"
