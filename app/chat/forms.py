import re

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.core.validators import RegexValidator

from chat.models import AccountNick
from chat.validation import (
    NICK_MAX_LENGTH,
    ROOM_NAME_MAX_LENGTH,
    ROOM_NAME_PATTERN,
    mixes_scripts,
    scripts_of,
)


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

    def clean_username(self):
        username = super().clean_username()  # None when taken in another case (error added)
        if not username:
            return username
        if mixes_scripts(username):
            raise forms.ValidationError(
                "Use the letters of one alphabet (this name mixes %(scripts)s): mixed letters "
                "are how one name is made to look like another.",
                code="mixed_scripts",
                params={"scripts": ", ".join(sorted(scripts_of(username))).lower()},
            )
        if AccountNick.taken(username):
            raise forms.ValidationError(
                "This username looks like one that is taken.", code="look_alike"
            )
        return username
