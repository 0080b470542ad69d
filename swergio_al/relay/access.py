"""Who may do what: role tokens, the labeler's allow-list, and the browser origin check."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol
from urllib.parse import urlsplit

from swergio_al.protocol import (
    ID,
    ROLE,
    ROOM,
    TO,
    TO_ROOM,
    TOKEN,
    TYPE,
    ErrorCode,
    Message,
    MessageType,
    ProtocolError,
    Role,
)

# What a labeler may send: membership of feedback rooms and its answers, nothing else.
LABELER_TYPES = frozenset({
    MessageType.REGISTER, MessageType.JOINROOM, MessageType.LEAVEROOM, MessageType.DISCONNECT,
    MessageType.FEEDBACK_LABEL, MessageType.FEEDBACK_SKIP,
})


def generate_token() -> str:
    return secrets.token_urlsafe(24)


def tokens_match(given: str, expected: str) -> bool:
    """Constant-time comparison: a token's prefix is never told apart by timing.

    `given` may be anything a client sent: non-ASCII header bytes (which aiohttp
    hands over as surrogate escapes) or a lone surrogate simply do not match.
    """
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


class Credential(IntEnum):
    """What a connection proved when it registered; higher is stronger."""

    NONE = 0
    LABELER_TOKEN = 1
    COMPONENT_TOKEN = 2


class NameHolder(Protocol):
    """What the takeover rule looks at in the connection holding a name."""

    @property
    def role(self) -> Role: ...

    @property
    def credential(self) -> Credential: ...


@dataclass(frozen=True)
class RemoteHolder:
    """A name's holder on another node, as the broker's presence registry keeps it."""

    role: Role
    credential: Credential

    def describe(self) -> str:
        return f"{self.role.value}:{int(self.credential)}"

    @classmethod
    def parse(cls, text: str | None) -> RemoteHolder | None:
        """None for nothing or something unreadable (a node of an older version)."""
        role, _, credential = (text or "").partition(":")
        try:
            return cls(Role(role), Credential(int(credential)))
        except ValueError:
            return None


class AccessPolicy:
    """Checks each REGISTER against the role tokens and each later message against the role.

    With no token configured, the server is open (the loopback default): any
    client may register in any role. With a component token, registering as a
    component needs it; with a labeler token, registering as a labeler needs
    either token. The component token is the stronger one.
    """

    def __init__(self, *, component_token: str = "", labeler_token: str = "",
                 is_feedback_room: Callable[[str], bool] = lambda room: False) -> None:
        self.component_token = component_token
        self.labeler_token = labeler_token
        self.is_feedback_room = is_feedback_room

    @property
    def open(self) -> bool:
        return not (self.component_token or self.labeler_token)

    def admit(self, register: Message) -> tuple[Role, Credential]:
        """The role a REGISTER may have and the credential it showed, or
        ProtocolError(UNAUTHORIZED). Tokens are never logged."""
        wanted = Role(register.get(ROLE, Role.COMPONENT.value))
        token = register.get(TOKEN)
        given = token if isinstance(token, str) else ""
        if self.component_token and tokens_match(given, self.component_token):
            return wanted, Credential.COMPONENT_TOKEN
        if (wanted is Role.LABELER and self.labeler_token
                and tokens_match(given, self.labeler_token)):
            return Role.LABELER, Credential.LABELER_TOKEN
        if self.open or (not self.component_token and wanted is Role.COMPONENT):
            return wanted, Credential.NONE  # an open server, or only labelers are gated
        raise ProtocolError(ErrorCode.UNAUTHORIZED,
                            f"a valid TOKEN is required to register as {wanted.value}",
                            register.get(ID) if isinstance(register.get(ID), str) else None)

    def may_label(self, token: str) -> bool:
        """Whether a labeler showing `token` would be let in (pages and /media ask)."""
        try:
            self.admit({ROLE: Role.LABELER.value, TOKEN: token})
        except ProtocolError:
            return False
        return True

    @staticmethod
    def may_take_over(holder: NameHolder, role: Role, credential: Credential) -> bool:
        """Whether a newcomer registering as `role` with `credential` may take the name
        `holder` has (closing it with 4001, as a reconnecting client needs to).

        Never across roles, and never with a weaker credential: a labeler cannot
        become a model's name and receive its labels and features, nor can an
        anonymous client push out someone who showed a token.
        """
        return role is holder.role and credential >= holder.credential

    def check(self, role: Role, message: Message, *, sender: str | None = None) -> None:
        """Refuse what `role` may not do (ProtocolError FORBIDDEN).

        A message addressed only to the sender itself is always allowed: it
        reaches nobody else, and clients use it as a round trip to know the
        server has handled everything they sent before.
        """
        if role is not Role.LABELER:
            return
        if sender is not None and message.get(TO) == sender and TO_ROOM not in message:
            return
        kind, ref = message[TYPE], message.get(ID)
        if kind not in LABELER_TYPES:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"a labeler may not send {kind}", ref)
        if kind == MessageType.JOINROOM and not self.is_feedback_room(message[ROOM]):
            raise ProtocolError(ErrorCode.FORBIDDEN,
                                f"a labeler may only join feedback rooms, not {message[ROOM]}",
                                ref)
        if TO in message:
            raise ProtocolError(ErrorCode.FORBIDDEN, "a labeler may not address components", ref)


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str]) -> bool:
    """Browsers send Origin; a page from another site must not open /ws (CSWSH).

    No Origin header means a non-browser client (Python, swergio), which tokens
    govern instead. Same-origin is always allowed; others only when listed
    (`*` allows any).
    """
    if origin is None:
        return True
    allowed = list(allowed)
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.netloc == host
