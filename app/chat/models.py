from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from chat.validation import NICK_MAX_LENGTH, ROOM_NAME_MAX_LENGTH, ROOM_NAME_PATTERN, nick_key


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
    reached it (Redis pub/sub delivers at most once: a process cut off from Redis misses broadcasts)
    and fetches them from here; a global auto-increment key would increase just as well but could
    not show the gap.
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


class AccountNick(models.Model):
    """How an account's username looks (chat.validation.nick_key), kept beside the account so that
    a visitor's nick or a new username that merely looks the same is found with one query.

    Written whenever a user is saved (chat.signals). Not unique: accounts made before it existed
    may already look alike; new ones cannot (chat.forms.SignUpForm).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        primary_key=True,
        related_name="nick_look",
        on_delete=models.CASCADE,
    )
    key = models.CharField(max_length=255, db_index=True)

    def __str__(self) -> str:
        return self.key

    @classmethod
    def record(cls, user) -> None:
        cls.objects.update_or_create(user=user, defaults={"key": nick_key(user.get_username())})

    @classmethod
    def taken(cls, nick: str, except_user_id: int | None = None) -> bool:
        """Whether some account's username looks like `nick`."""
        return cls.objects.filter(key=nick_key(nick)).exclude(user_id=except_user_id).exists()
