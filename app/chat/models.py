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
    # The id of the room's newest message; the next one gets last_message_id + 1.
    last_message_id = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Message(models.Model):
    """One chat line.

    `seq` is the message id of the protocol: 1, 2, 3, ... within its room, without gaps. Because
    ids are contiguous, a connection that receives id 7 right after id 4 knows that 5 and 6 never
    reached it (a full channel-layer channel drops group messages silently) and fetches them from
    here; a global auto-increment key would increase just as well but could not show the gap.
    """

    room = models.ForeignKey(Room, related_name="messages", on_delete=models.CASCADE)
    seq = models.PositiveBigIntegerField()
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
        ordering = ["room", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="chat_message_unique_room_seq")
        ]

    def __str__(self) -> str:
        return f"{self.room_id}#{self.seq} <{self.nick}> {self.text[:40]}"
