"""Names the chat accepts: one definition shared by URLs, forms, the consumer and the page."""

import re
import unicodedata

ROOM_NAME_PATTERN = r"[a-z0-9-]{1,50}"
ROOM_NAME_MAX_LENGTH = 50
NICK_MAX_LENGTH = 32
# Message ids (Message.seq, Room.last_message_id) are PositiveBigIntegerFields: a bigint in
# PostgreSQL. A larger `since` is not an id; Python would also refuse to parse past 4,300 digits.
MESSAGE_ID_MAX = 2**63 - 1

_ROOM_NAME = re.compile(ROOM_NAME_PATTERN)


def is_valid_room_name(name: str) -> bool:
    return _ROOM_NAME.fullmatch(name) is not None


def clean_nick(raw: str | None) -> str | None:
    """The nick a client asked for, without surrounding blanks, or None if it is not acceptable.

    Acceptable: 1 to 32 printable characters (no control characters, line breaks or tabs).
    """
    if raw is None:
        return None
    nick = raw.strip()
    if not 1 <= len(nick) <= NICK_MAX_LENGTH or not nick.isprintable():
        return None
    return nick


# Scripts that are written together (Unicode TR39's "highly restrictive" level): a name may use
# one script, or Latin with one of these sets. The script of a letter is the first word of its
# Unicode name ("CYRILLIC SMALL LETTER O"); digits, marks and punctuation belong to none.
_SCRIPT_SETS = (
    {"LATIN", "CJK", "HIRAGANA", "KATAKANA"},
    {"LATIN", "CJK", "BOPOMOFO"},
    {"LATIN", "CJK", "HANGUL"},
)


def nick_key(nick: str) -> str:
    """How a nick looks, to tell look-alikes: compatibility forms folded (bob in fullwidth letters
    is bob), case folded, accents dropped (élodie is Elodie). Nicks with one key read alike."""
    folded = unicodedata.normalize("NFKC", nick).casefold()
    return "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))


def scripts_of(nick: str) -> set[str]:
    letters = (c for c in unicodedata.normalize("NFKC", nick) if unicodedata.category(c)[0] == "L")
    return {unicodedata.name(c, "UNKNOWN").split()[0] for c in letters}


def mixes_scripts(nick: str) -> bool:
    """Whether a name mixes scripts that are not written together, as "bob" with a Cyrillic o in
    the middle does: the way to look like someone else's name with another alphabet's letters."""
    scripts = scripts_of(nick)
    return len(scripts) > 1 and not any(scripts <= allowed for allowed in _SCRIPT_SETS)


def parse_message_id(raw: str) -> int | None:
    """A `since` parameter as a message id (0 to MESSAGE_ID_MAX, ASCII digits), or None."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(MESSAGE_ID_MAX)):
        return None
    value = int(raw)
    return value if value <= MESSAGE_ID_MAX else None
