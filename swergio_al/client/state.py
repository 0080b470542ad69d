"""A component's lifecycle states, the errors it raises, and the reconnect backoff."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from enum import Enum

from swergio_al.protocol import Message


class ComponentState(Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class RefusedError(Exception):
    """The server answered one of our messages with ERROR."""

    def __init__(self, error: Message) -> None:
        self.code: str = str(error.get("CODE"))
        self.message: str = str(error.get("MESSAGE"))
        self.ref: str | None = error.get("REF")
        super().__init__(f"{self.code}: {self.message}")


class NotConnectedError(ConnectionError):
    """No connection to the server within `send_timeout`, or the component is closed."""



def backoff_delays(initial: float, maximum: float, rng: random.Random) -> Iterator[float]:
    """Exponential backoff with full jitter: attempt n waits U(0, min(maximum, initial * 2**n)).

    Full jitter spreads the reconnects of many components after a server
    restart instead of having them arrive in waves.
    """
    attempt = 0
    while True:
        yield rng.uniform(0, min(maximum, initial * 2 ** min(attempt, 60)))
        attempt += 1


def as_rooms(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    rooms = (value,) if isinstance(value, str) else tuple(value)
    for room in rooms:
        if not isinstance(room, str) or not room:
            raise ValueError(f"room names must be non-empty strings, got {room!r}")
    return rooms
