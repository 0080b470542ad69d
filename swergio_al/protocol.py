"""The wire protocol: envelope keys, message types, close codes, validation. No I/O."""

from __future__ import annotations

import json
import uuid
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
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_ROOMS = "too_many_rooms"
    UNKNOWN_TASK = "unknown_task"
    NOT_YOUR_TASK = "not_your_task"
    INVALID_ANSWER = "invalid_answer"
    LIMIT_REACHED = "limit_reached"
    UNAVAILABLE = "unavailable"


class ProtocolError(Exception):
    """A message the server refuses; becomes an ERROR frame for its sender."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


def new_id() -> str:
    return uuid.uuid4().hex


def error_frame(code: ErrorCode, message: str, ref: str | None = None) -> Message:
    return {ID: new_id(), TYPE: MessageType.ERROR.value, "CODE": code.value, "MESSAGE": message,
            "REF": ref}


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN/Infinity, but they are not JSON and browsers' JSON.parse rejects them.
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_refuse_constant)
# ASCII output: a lone surrogate escape ("\ud800") that json reads must stay an escape,
# or the UTF-8 encoding of the frame fails on its way out.
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def decode(text: str) -> Message:
    """Parse one frame into a message, or raise ProtocolError."""
    try:
        value = _decoder.decode(text)
    except (ValueError, RecursionError) as exc:  # ValueError: bad syntax, huge ints, NaN
        raise ProtocolError(ErrorCode.INVALID_JSON,
                            f"frame is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise ProtocolError(ErrorCode.NOT_AN_OBJECT,
                            f"a message must be a JSON object, got {type(value).__name__}")
    return value


def encode(message: Message) -> str:
    return _encoder.encode(message)


def stamp_sender(text: str, sent_by: str) -> str:
    """`text` (a JSON object with an ID and no SENT_BY) with SENT_BY appended.

    The relay's fast path: the frame a client sent is passed on as it came,
    payload untouched, instead of being parsed-then-re-encoded per message.
    """
    end = text.rstrip().rindex("}")
    return f'{text[:end]},"{SENT_BY}":{_encoder.encode(sent_by)}}}'


def logging_mirror(text: str) -> str:
    """The `_logging` copy of an encoded DATA/FORWARD or DATA/GRADIENT, as swergio 0.0.2 sent it."""
    return (f'{{"{ID}":"{new_id()}","{TYPE}":"{MessageType.MESSAGES.value}",'
            f'"{TO_ROOM}":"{LOGGING_ROOM}","MESSAGE":{text}}}')


def _ref_of(message: Message) -> str | None:
    value = message.get(ID)
    return value if isinstance(value, str) else None


def _require_str(message: Message, key: str, ref: str | None, *, optional: bool = False) -> None:
    if key not in message:
        if optional:
            return
        raise ProtocolError(ErrorCode.BAD_FIELD, f"{message.get(TYPE)} needs {key}", ref)
    value = message[key]
    if not isinstance(value, str) or not value:
        raise ProtocolError(ErrorCode.BAD_FIELD,
                            f"{key} must be a non-empty string, got {type(value).__name__}", ref)


def validate(message: Message) -> Message:
    """Check the envelope of a decoded message; fill in a missing ID.

    Raises ProtocolError naming the first thing wrong. Payload keys are not
    inspected here: the relay passes them through untouched.
    """
    if ID in message and not isinstance(message[ID], str):
        raise ProtocolError(ErrorCode.BAD_FIELD,
                            f"ID must be a string, got {type(message[ID]).__name__}")
    ref = _ref_of(message)
    if TYPE not in message:
        raise ProtocolError(ErrorCode.MISSING_TYPE, "message has no TYPE", ref)
    kind = message[TYPE]
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.BAD_FIELD,
                            f"TYPE must be a string, got {type(kind).__name__}", ref)
    if kind not in KNOWN_TYPES or kind == MessageType.ERROR:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown TYPE {kind[:80]!r}", ref)
    if ID not in message:
        message[ID] = new_id()
    _require_str(message, TO_ROOM, ref, optional=True)
    _require_str(message, TO, ref, optional=True)
    if kind == MessageType.REGISTER:
        _require_str(message, NAME, ref)
        _require_str(message, TOKEN, ref, optional=True)
        role = message.get(ROLE, Role.COMPONENT.value)
        if role not in (Role.COMPONENT.value, Role.LABELER.value):
            raise ProtocolError(ErrorCode.BAD_FIELD,
                                f"ROLE must be 'component' or 'labeler', got {role!r:.80}", ref)
    elif kind in (MessageType.JOINROOM, MessageType.LEAVEROOM):
        _require_str(message, ROOM, ref)
    elif kind not in SERVER_COMMANDS and TO_ROOM not in message and TO not in message:
        raise ProtocolError(ErrorCode.NO_RECIPIENT, f"{kind} needs TO_ROOM or TO", ref)
    if ROOT_ID in message and not isinstance(message[ROOT_ID], str):
        raise ProtocolError(ErrorCode.BAD_FIELD, "ROOT_ID must be a string", ref)
    status = message.get(MODEL_STATUS)
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        raise ProtocolError(ErrorCode.BAD_FIELD, "MODEL_STATUS must be an integer", ref)
    return message
