import re

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.core.validators import RegexValidator

from chat.validation import NICK_MAX_LENGTH, ROOM_NAME_MAX_LENGTH, ROOM_NAME_PATTERN


class RoomNameField(forms.CharField):
    """Forgiving about what people type: "Book Club" opens the room "book-club"."""

    def to_python(self, value):
        return re.sub(r"\s+", "-", super().to_python(value).lower())


class OpenRoomForm(forms.Form):
    room = RoomNameField(
        label="Room name",
        max_length=ROOM_NAME_MAX_LENGTH,
        validators=[
            RegexValidator(
                f"^{ROOM_NAME_PATTERN}$",
                "Use letters, digits and hyphens (at most 50).",
            )
        ],
        widget=forms.TextInput(attrs={"placeholder": "e.g. general", "autocomplete": "off"}),
    )


class SignUpForm(UserCreationForm):
    """Django's sign-up form, with usernames short enough to be chat nicks."""

    class Meta(UserCreationForm.Meta):
        fields = ("username",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        username = self.fields["username"]
        username.max_length = NICK_MAX_LENGTH
        username.widget.attrs["maxlength"] = str(NICK_MAX_LENGTH)
        username.validators.append(
            RegexValidator(
                rf"^.{{1,{NICK_MAX_LENGTH}}}$",
                f"Usernames are at most {NICK_MAX_LENGTH} characters (they are your nick).",
            )
        )
        username.help_text = (
            f"At most {NICK_MAX_LENGTH} characters: letters, digits and @ . + - _ only. "
            "It is the name you chat under."
        )
