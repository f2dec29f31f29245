"""The WebSocket protocol's frames, in one place (README.md, "WebSocket protocol", documents them).

Parsing is pure and synchronous so every rule is testable without a socket.
"""

import json
from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_JSON = "bad_json"
    BAD_TYPE = "bad_type"
    EMPTY = "empty"
    TOO_LONG = "too_long"
    RATE_LIMITED = "rate_limited"
    ROOM_LIMIT = "room_limit"
    BINARY_NOT_SUPPORTED = "binary_not_supported"


class ProtocolError(Exception):
    def __init__(self, code: ErrorCode, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ClientFrame:
    type: str
    text: str = ""


CLIENT_FRAME_TYPES = ("message", "ping")

# A JSON string may spell one character as a six-character escape (\u00e9); a frame longer than
# this cannot hold a text within the limit, so it is refused before being parsed at all.
_JSON_ESCAPE_WIDTH = 6
_FRAME_OVERHEAD = 1024


def max_frame_size(max_length: int) -> int:
    """The largest frame a client needs to send a text of `max_length` characters, in characters
    and in bytes alike: six per character (an escape is six ASCII bytes, a character at most four
    in UTF-8) plus the JSON around the text. daphne's frame and message limits are set from it
    (djchat.asgi_server), so a frame no valid message needs is refused before it is buffered."""
    return max_length * _JSON_ESCAPE_WIDTH + _FRAME_OVERHEAD


def parse_client_frame(text_data: str, max_length: int) -> ClientFrame:
    """Validate one text frame from a client; raise ProtocolError with the code to report."""
    if len(text_data) > max_frame_size(max_length):
        raise ProtocolError(ErrorCode.TOO_LONG, f"Messages are limited to {max_length} characters.")
    try:
        frame = json.loads(text_data)
    except (ValueError, RecursionError):
        # RecursionError: a few kilobytes of nested brackets exhaust the parser's stack.
        raise ProtocolError(ErrorCode.BAD_JSON, "The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, "The frame must be a JSON object.")

    frame_type = frame.get("type")
    if frame_type == "ping":
        return ClientFrame(type="ping")
    if frame_type != "message":
        raise ProtocolError(
            ErrorCode.BAD_TYPE,
            f"Unknown frame type {frame_type!r}; expected one of {', '.join(CLIENT_FRAME_TYPES)}.",
        )

    text = frame.get("text")
    if not isinstance(text, str):
        raise ProtocolError(ErrorCode.BAD_TYPE, 'A message frame needs a string "text".')
    if not _is_unicode_text(text):
        raise ProtocolError(ErrorCode.BAD_JSON, "The text holds an unpaired UTF-16 surrogate.")
    if not text.strip():
        raise ProtocolError(ErrorCode.EMPTY, "The message is empty.")
    if len(text) > max_length:
        raise ProtocolError(ErrorCode.TOO_LONG, f"Messages are limited to {max_length} characters.")
    # Stored and sent exactly as written: the page renders it as text, so markup stays inert.
    return ClientFrame(type="message", text=text)


def _is_unicode_text(text: str) -> bool:
    # JSON's \uXXXX escapes can spell half a surrogate pair, which no UTF-8 encoder (the
    # database's, the socket's) accepts: refuse it here rather than fail while storing it.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def history_frame(room: str, served_by: str, messages: list[dict]) -> dict:
    return {"type": "history", "room": room, "served_by": served_by, "messages": messages}


def presence_frame(online: list[str]) -> dict:
    return {"type": "presence", "online": online}


def presence_change_frame(joined: list[str], left: list[str]) -> dict:
    return {"type": "presence_change", "joined": joined, "left": left}


def error_frame(code: ErrorCode, detail: str) -> dict:
    return {"type": "error", "code": str(code), "detail": detail}


PONG_FRAME = {"type": "pong"}
