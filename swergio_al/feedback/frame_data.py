"""A feedback frame's DATA, read by the service: one clear BAD_FIELD error for what is wrong."""

from __future__ import annotations

from typing import Any

from swergio_al.protocol import DATA, ID, TYPE, ErrorCode, Message, ProtocolError


def field_error(message: Message, text: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FIELD, f"{message[TYPE]}: {text}", message[ID])


def frame_data(message: Message) -> dict[str, Any]:
    data = message.get(DATA, {})
    if not isinstance(data, dict):
        raise field_error(message, "DATA must be an object")
    return data
