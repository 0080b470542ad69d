"""Brokers carry room traffic between server processes. In-memory (one process) by default."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Envelope:
    """One delivery, as another node needs it: the encoded frame and its addressing."""

    text: str
    room: str | None
    to: str | None
    exclude: str | None


OnEnvelope = Callable[[Envelope], None]
OnSignal = Callable[[str, dict[str, Any]], None]


class Broker(ABC):
    """Fan-out between nodes plus a registry of which names are online anywhere."""

    #: True when other nodes may have members this node does not know about.
    distributed = False
    #: Set by the Hub: called with a local name that a newer connection on
    #: another node registered, so the older one is closed (4001) as locally.
    on_taken_over: Callable[[str], None] | None = None
    #: Set by a service (the FeedbackService) to hear other nodes' `signal`s.
    on_signal: OnSignal | None = None

    def signal(self, topic: str, data: dict[str, Any]) -> None:
        """Tell the services of every other node that something changed (JSON `data`).

        Fire and forget, never blocks; one process has nobody else to tell.
        """
        return None

    @abstractmethod
    async def start(self, on_envelope: OnEnvelope) -> None:
        """Begin delivering other nodes' envelopes to `on_envelope`."""

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def publish(self, envelope: Envelope) -> None:
        """Send an envelope (already delivered locally) to every other node."""

    @abstractmethod
    def publish_nowait(self, envelope: Envelope) -> None:
        """Like `publish`, for callers that cannot await; must not block."""

    @abstractmethod
    async def claim(self, name: str, holder: str = "") -> None:
        """Record that `name` is connected to this node, registered as `holder`
        (role:credential, see relay/access.py)."""

    async def holder_elsewhere(self, name: str) -> str | None:
        """The `holder` another node's connection claimed `name` with, or None
        (not online elsewhere, or claimed without one)."""
        return None

    @abstractmethod
    async def release(self, name: str) -> None: ...

    @abstractmethod
    async def is_online(self, name: str) -> bool:
        """Whether `name` is connected to some *other* node."""


class MemoryBroker(Broker):
    """A single process: every member is local, so there is nothing to carry."""

    async def start(self, on_envelope: OnEnvelope) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, envelope: Envelope) -> None:
        return None

    def publish_nowait(self, envelope: Envelope) -> None:
        return None

    async def claim(self, name: str, holder: str = "") -> None:
        return None

    async def release(self, name: str) -> None:
        return None

    async def is_online(self, name: str) -> bool:
        return False


def create_broker(url: str) -> Broker:
    """`memory://` or `redis://host:port/db`."""
    if url.startswith("memory:"):
        return MemoryBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from swergio_al.relay.redis_broker import RedisBroker  # optional dependency

        return RedisBroker(url)
    raise ValueError(f"unknown broker {url!r}: use memory:// or redis://host:port/db")
