from chat.validation import ROOM_NAME_PATTERN


class RoomNameConverter:
    """<room:name> in URL patterns: only valid room names route, anything else is a 404."""

    regex = ROOM_NAME_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
