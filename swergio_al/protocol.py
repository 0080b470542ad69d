"""The wire protocol: envelope keys, message types, close codes, validation. No I/O."""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import re
from enum import IntEnum, StrEnum
from typing import Any

Message = dict[str, Any]

# Envelope keys (upper case, as in swergio 0.0.2).
ID = "ID"
TYPE = "TYPE"
TO_ROOM = "TO_ROOM"
TO = "TO"
SENT_BY = "SENT_BY"
ROOT_ID = "ROOT_ID"
MODEL_STATUS = "MODEL_STATUS"
NAME = "NAME"
ROOM = "ROOM"
ROLE = "ROLE"
TOKEN = "TOKEN"
DATA = "DATA"

COMMAND_ROOM = "_command"
LOGGING_ROOM = "_logging"
RESERVED_ROOMS = frozenset({COMMAND_ROOM, LOGGING_ROOM})


class MessageType(StrEnum):
    REGISTER = "COMMAND/REGISTER"
    JOINROOM = "COMMAND/JOINROOM"
    LEAVEROOM = "COMMAND/LEAVEROOM"
    DISCONNECT = "COMMAND/DISCONNECT"
    ENABLELOGGING = "COMMAND/ENABLELOGGING"
    DISABLELOGGING = "COMMAND/DISABLELOGGING"
    SAVEMODELWEIGHTS = "COMMAND/SAVEMODELWEIGHTS"
    LOADMODELWEIGHTS = "COMMAND/LOADMODELWEIGHTS"
    SAVESETTINGS = "COMMAND/SAVESETTINGS"
    LOADSETTINGS = "COMMAND/LOADSETTINGS"
    COMMAND_CUSTOM = "COMMAND/CUSTOM"

    FORWARD = "DATA/FORWARD"
    GRADIENT = "DATA/GRADIENT"
    REWARD = "DATA/REWARD"
    TEXT = "DATA/TEXT"
    DATA_CUSTOM = "DATA/CUSTOM"

    MODELWEIGHTS = "LOG/MODELWEIGHTS"
    SETTINGS = "LOG/SETTINGS"
    MESSAGES = "LOG/MESSAGES"
    KPI = "LOG/KPI"
    RUN = "LOG/RUN"
    LOG_CUSTOM = "LOG/CUSTOM"

    FEEDBACK_REQUEST = "FEEDBACK/REQUEST"
    FEEDBACK_TASK = "FEEDBACK/TASK"
    FEEDBACK_LABEL = "FEEDBACK/LABEL"
    FEEDBACK_ACK = "FEEDBACK/ACK"
    FEEDBACK_SKIP = "FEEDBACK/SKIP"
    FEEDBACK_CANCEL = "FEEDBACK/CANCEL"
    FEEDBACK_RESCORE = "FEEDBACK/RESCORE"
    FEEDBACK_HISTORY = "FEEDBACK/HISTORY"
    FEEDBACK_STATS = "FEEDBACK/STATS"

    ERROR = "ERROR"


KNOWN_TYPES = frozenset(t.value for t in MessageType)
# Commands the server itself acts on; other COMMAND/* types are relayed like data.
SERVER_COMMANDS = frozenset(
    {MessageType.REGISTER, MessageType.JOINROOM, MessageType.LEAVEROOM, MessageType.DISCONNECT}
)
MIRRORED_TYPES = frozenset({MessageType.FORWARD, MessageType.GRADIENT})


class Role(StrEnum):
    COMPONENT = "component"
    LABELER = "labeler"


class CloseCode(IntEnum):
    """WebSocket close codes used by the server."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    TRY_AGAIN_LATER = 1013  # outbound queue overflow: a receiver that cannot keep up
    TAKEN_OVER = 4001  # another connection registered the same name
    UNAUTHORIZED = 4003


class ErrorCode(StrEnum):
    INVALID_JSON = "invalid_json"
    BAD_STRING = "bad_string"  # a string with U+0000 or a lone surrogate, anywhere in the frame
    BAD_NUMBER = "bad_number"  # a number literal a double cannot hold (1e400), anywhere
    NOT_AN_OBJECT = "not_an_object"
    MISSING_TYPE = "missing_type"
    UNKNOWN_TYPE = "unknown_type"
    BAD_FIELD = "bad_field"
    NOT_REGISTERED = "not_registered"
    NOT_IN_ROOM = "not_in_room"
    RESERVED_ROOM = "reserved_room"
    UNKNOWN_RECIPIENT = "unknown_recipient"
    NO_RECIPIENT = "no_recipient"
    TOO_LARGE = "too_large"
    BINARY_FRAME = "binary_frame"
    FORBIDDEN = "forbidden"
    NAME_TAKEN = "name_taken"  # the name is held by another role or a stronger credential
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_ROOMS = "too_many_rooms"
    UNKNOWN_TASK = "unknown_task"
    NOT_YOUR_TASK = "not_your_task"
    INVALID_ANSWER = "invalid_answer"
    LIMIT_REACHED = "limit_reached"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal_error"


class ProtocolError(Exception):
    """A message the server refuses; becomes an ERROR frame for its sender."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


def new_id() -> str:
    """A unique id of 32 hex digits: this process's random half, then a count.

    As unique as uuid4 across processes and restarts (64 random bits each), and
    without its getrandom() call per id, which cost a busy server a tenth of its
    time (every frame the server sends carries a new id).
    """
    return f"{_id_prefix}{next(_id_count):016x}"


def _new_id_prefix() -> None:
    global _id_prefix, _id_count
    _id_prefix, _id_count = os.urandom(8).hex(), itertools.count()


_id_prefix = ""
_id_count = itertools.count()
_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)  # a child must not repeat its parent's ids


def error_frame(code: ErrorCode, message: str, ref: str | None = None) -> Message:
    return {ID: new_id(), TYPE: MessageType.ERROR.value, "CODE": code.value, "MESSAGE": message,
            "REF": ref}


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN/Infinity, but they are not JSON and browsers' JSON.parse rejects them.
    raise ValueError(f"{name} is not valid JSON")


class _OutOfRange(ValueError):
    """A number literal beyond a double (1e400), met while parsing."""


def _finite_float(literal: str) -> float:
    # Only float literals come here (integers stay exact at any size): one that a
    # double cannot hold would become inf, which no JSON text can carry onwards.
    value = float(literal)
    if value - value != 0.0:
        raise _OutOfRange(literal)
    return value


_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
# Reads the ID of a frame refused for its numbers, to name it in the ERROR's REF.
_lenient_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=lambda _: 0.0)
_JSON_SPACE = " \t\n\r"
# allow_nan=False: every frame the server emits parses under a strict JSON parser.
# ASCII output keeps any non-ASCII text an escape, so no frame can fail to encode as UTF-8.
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)

# U+0000 and the surrogate code points cannot be stored or re-encoded as UTF-8
# text (SQLite, PostgreSQL, str.encode refuse them); frames arrive as strict
# UTF-8, so they can only come in as \u escapes, which is what the cheap first test looks for.
_UNSAFE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_UNSAFE_CHAR = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why a string cannot travel or be stored (U+0000, a lone surrogate), or None."""
    found = _UNSAFE_CHAR.search(value)
    if found is None:
        return None
    char = found.group()
    return "U+0000" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X})"


def _string_problem(value: Any) -> str | None:
    """The first unsafe string anywhere in a decoded value: where it is and what is wrong."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return f"{path or 'the value'} holds {problem}"
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = text_problem(key)
                if problem is not None:
                    return f"a key in {path or 'the message'} holds {problem}"
                stack.append((_member(path, key), child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in enumerate(item))
    return None


def _member(path: str, key: str) -> str:
    # Keys are the sender's text: ASCII-escaped (json.dumps), they cannot forge a log line.
    if key.isascii() and key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _clean_id(message: Any) -> str | None:
    ref = message.get(ID) if isinstance(message, dict) else None
    return ref if isinstance(ref, str) and text_problem(ref) is None else None


def decode(text: str) -> Message:
    """Parse one frame (text decoded as strict UTF-8) into a message, or raise ProtocolError.

    The protocol boundary: besides JSON syntax, every string anywhere in the
    frame must be storable text (no U+0000, no lone surrogate: `bad_string`) and
    every float literal must fit a double (`bad_number`); integers are exact.
    """
    try:
        value = _parse(text, _decoder)
    except _OutOfRange as exc:
        raise ProtocolError(ErrorCode.BAD_NUMBER,
                            f"number {str(exc)[:40]} is beyond the range of a double",
                            _clean_id(_lenient_parse(text))) from None
    except (ValueError, RecursionError) as exc:  # ValueError: bad syntax, huge ints, NaN
        raise ProtocolError(ErrorCode.INVALID_JSON,
                            f"frame is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise ProtocolError(ErrorCode.NOT_AN_OBJECT,
                            f"a message must be a JSON object, got {type(value).__name__}")
    if "\\u" in text and _UNSAFE_ESCAPE.search(text):
        problem = _string_problem(value)
        if problem is not None:
            raise ProtocolError(ErrorCode.BAD_STRING,
                                f"strings must be text without U+0000 or lone surrogates: "
                                f"{problem[:200]}", _clean_id(value))
    return value


def _parse(text: str, decoder: json.JSONDecoder) -> Any:
    if text[:1] in _JSON_SPACE:  # rare: leading blanks (or nothing at all)
        return decoder.decode(text)
    value, end = decoder.raw_decode(text)  # raw_decode skips decode()'s two whitespace scans
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        raise ValueError(f"extra data at character {end}")
    return value


def _lenient_parse(text: str) -> Any:
    try:
        return _parse(text, _lenient_decoder)
    except (ValueError, RecursionError):
        return None


def is_finite_number(value: Any) -> bool:
    """A JSON number the server can compute with: not a bool, within a double's range.

    Integers beyond a double (10**400) travel exactly but are not numbers here.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large to convert to float
        return False


def encode(message: Message) -> str:
    return _encoder.encode(message)


def stamp_sender(text: str, sent_by: str) -> str:
    """`text` (a JSON object with an ID and no SENT_BY) with SENT_BY appended.

    The relay's fast path: the frame a client sent is passed on as it came,
    payload untouched, instead of being parsed-then-re-encoded per message.
    """
    end = len(text) - 1 if text[-1] == "}" else text.rstrip().rindex("}")
    return text[:end] + _sent_by_suffix(sent_by)


@functools.lru_cache(maxsize=4096)
def _sent_by_suffix(sent_by: str) -> str:
    return f',"{SENT_BY}":{_encoder.encode(sent_by)}}}'


def logging_mirror(text: str) -> str:
    """The `_logging` copy of an encoded DATA/FORWARD or DATA/GRADIENT, as swergio 0.0.2 sent it."""
    return (f'{{"{ID}":"{new_id()}","{TYPE}":"{MessageType.MESSAGES.value}",'
            f'"{TO_ROOM}":"{LOGGING_ROOM}","MESSAGE":{text}}}')


# Plain str copies of the types the hot path compares against: reading an Enum
# member costs several times a module global, for every message.
_REGISTER = MessageType.REGISTER.value
_JOIN_OR_LEAVE = frozenset({MessageType.JOINROOM.value, MessageType.LEAVEROOM.value})
_SERVER_COMMANDS = frozenset(t.value for t in SERVER_COMMANDS)
# Clients may send every known type except ERROR, which only the server sends.
_CLIENT_TYPES = KNOWN_TYPES - {MessageType.ERROR.value}
_ROLES = frozenset(r.value for r in Role)
_MISSING: Any = object()


def _bad_field(key: str, value: object, ref: str | None, wanted: str = "a non-empty string"
               ) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FIELD,
                         f"{key} must be {wanted}, got {type(value).__name__}", ref)


def _require_str(message: Message, key: str, ref: str | None) -> None:
    value = message.get(key, _MISSING)
    if value is _MISSING:
        raise ProtocolError(ErrorCode.BAD_FIELD, f"{message[TYPE]} needs {key}", ref)
    if not isinstance(value, str) or not value:
        raise _bad_field(key, value, ref)


def validate(message: Message) -> Message:
    """Check the envelope of a decoded message; fill in a missing ID.

    Raises ProtocolError naming the first thing wrong. Payload keys are not
    inspected here: the relay passes them through untouched.
    """
    get = message.get
    ref = get(ID, _MISSING)
    if ref is not _MISSING and not isinstance(ref, str):
        raise _bad_field(ID, ref, None, "a string")
    if ref is _MISSING:
        ref = None
    kind = get(TYPE, _MISSING)
    if kind is _MISSING:
        raise ProtocolError(ErrorCode.MISSING_TYPE, "message has no TYPE", ref)
    if not isinstance(kind, str):
        raise _bad_field(TYPE, kind, ref, "a string")
    if kind not in _CLIENT_TYPES:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown TYPE {kind[:80]!r}", ref)
    if ref is None:
        message[ID] = new_id()
    room = get(TO_ROOM, _MISSING)
    if room is not _MISSING and (not isinstance(room, str) or not room):
        raise _bad_field(TO_ROOM, room, ref)
    to = get(TO, _MISSING)
    if to is not _MISSING and (not isinstance(to, str) or not to):
        raise _bad_field(TO, to, ref)
    if kind in _SERVER_COMMANDS:
        if kind == _REGISTER:
            _require_str(message, NAME, ref)
            token = get(TOKEN, _MISSING)
            if token is not _MISSING and (not isinstance(token, str) or not token):
                raise _bad_field(TOKEN, token, ref)
            role = get(ROLE, Role.COMPONENT.value)
            if not isinstance(role, str) or role not in _ROLES:
                raise ProtocolError(ErrorCode.BAD_FIELD,
                                    f"ROLE must be 'component' or 'labeler', got {role!r:.80}",
                                    ref)
        elif kind in _JOIN_OR_LEAVE:
            _require_str(message, ROOM, ref)
    elif room is _MISSING and to is _MISSING:
        raise ProtocolError(ErrorCode.NO_RECIPIENT, f"{kind} needs TO_ROOM or TO", ref)
    root_id = get(ROOT_ID)
    if root_id is not None and not isinstance(root_id, str):
        raise ProtocolError(ErrorCode.BAD_FIELD, "ROOT_ID must be a string", ref)
    status = get(MODEL_STATUS)
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        raise ProtocolError(ErrorCode.BAD_FIELD, "MODEL_STATUS must be an integer", ref)
    return message
