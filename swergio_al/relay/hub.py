"""The Hub: names, rooms and fan-out. Transport-agnostic; endpoints feed it messages."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from swergio_al.protocol import (
    COMMAND_ROOM,
    ID,
    LOGGING_ROOM,
    MIRRORED_TYPES,
    NAME,
    RESERVED_ROOMS,
    ROLE,
    ROOM,
    SENT_BY,
    SERVER_COMMANDS,
    TO,
    TO_ROOM,
    TYPE,
    CloseCode,
    ErrorCode,
    Message,
    MessageType,
    ProtocolError,
    Role,
    encode,
    logging_mirror,
    new_id,
    stamp_sender,
)
from swergio_al.relay.access import AccessPolicy, Credential, NameHolder, RemoteHolder
from swergio_al.relay.broker import Broker, Envelope, MemoryBroker
from swergio_al.relay.connection import Connection
from swergio_al.relay.pipeline import PIPELINED_TYPES, Pipelines

if TYPE_CHECKING:
    from swergio_al.metrics import Metrics

log = logging.getLogger(__name__)

# Read on every message: a module global costs a fraction of an Enum member lookup.
_LABELER = Role.LABELER


class RoomService(Protocol):
    """Something that owns some rooms instead of plain fan-out (the FeedbackService)."""

    def owns(self, room: str) -> bool: ...

    async def handle(self, conn: Connection, message: Message) -> None:
        """A message sent TO_ROOM an owned room (SENT_BY already stamped)."""

    async def joined(self, conn: Connection, room: str) -> None: ...

    async def left(self, conn: Connection, room: str) -> None:
        """Also called for every owned room when a member disconnects."""

    async def registered(self, conn: Connection) -> None: ...


class Hub:
    """Who is connected, who is in which room, and delivering messages to them.

    Delivery is local first; then, when a broker links several server
    processes, the message is published once for the other nodes, which
    deliver to their own members (python-socketio's shape).
    """

    def __init__(self, *, broker: Broker | None = None, max_rooms: int = 256) -> None:
        self.broker: Broker = broker or MemoryBroker()
        self.max_rooms = max_rooms
        self.names: dict[str, Connection] = {}
        #: Every open connection, registered or not (closed on shutdown).
        self.connections: set[Connection] = set()
        self.rooms: dict[str, set[Connection]] = {}
        self.services: list[RoomService] = []
        self.delivered = 0
        #: Counts for /metrics, when served (swergio_al.metrics).
        self.metrics: Metrics | None = None
        #: Who may register as what, and what a labeler may do (open by default).
        self.access = AccessPolicy(is_feedback_room=lambda room: self.service_for(room) is not None)
        #: Frames of a connection still being handled after the next was read.
        self.pipes = Pipelines()

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self.broker.on_taken_over = self._taken_over_elsewhere
        await self.broker.start(self._from_broker)

    async def stop(self) -> None:
        await self.broker.stop()

    def attach(self, conn: Connection) -> None:
        """Track a new connection; `disconnect` forgets it again."""
        self.connections.add(conn)

    def close_all(self, code: CloseCode = CloseCode.GOING_AWAY, reason: str = "") -> None:
        """Start closing every connection (server shutdown); endpoints finish the rest."""
        for conn in list(self.connections):
            conn.close_soon(code, reason or "server shutting down")

    def service_for(self, room: str) -> RoomService | None:
        for service in self.services:
            if service.owns(room):
                return service
        return None

    # -- commands ----------------------------------------------------------

    async def register(self, conn: Connection, message: Message,
                       credential: Credential = Credential.NONE) -> None:
        """Give `conn` the NAME of a REGISTER whose ROLE the access policy admitted."""
        name = message[NAME]
        if conn.name == name:
            return
        role = Role(message.get(ROLE, Role.COMPONENT.value))
        previous = self.names.get(name)
        holder: NameHolder | None = previous if previous is not conn else None
        if holder is None and self.broker.distributed:  # held on another node?
            holder = RemoteHolder.parse(await self.broker.holder_elsewhere(name))
        if holder is not None and not self.access.may_take_over(holder, role, credential):
            # Checked before anything changes: the holder and the newcomer stay as they are.
            log.warning("refused %r from %s: the name is held by a %s (%s) connection",
                        name, conn.remote, holder.role.value, holder.credential.name.lower())
            raise ProtocolError(ErrorCode.NAME_TAKEN,
                                f"{name[:80]!r} is held by another connection; a takeover "
                                f"needs the same role and at least as strong a token",
                                message[ID])
        if conn.name is not None:
            await self._forget_name(conn)
        if previous is not None and previous is not conn:
            log.info("%s registered again from %s; closing the older connection %s",
                     name, conn.remote, previous.remote)
            previous.close_soon(CloseCode.TAKEN_OVER, "name taken over by a newer connection")
            await self.disconnect(previous)
        conn.name = name
        conn.role = role
        conn.credential = credential
        self.names[name] = conn
        await self.broker.claim(name, RemoteHolder(role, credential).describe())
        for service in self.services:
            await service.registered(conn)

    async def join(self, conn: Connection, room: str, *, ref: str | None = None) -> None:
        if room in RESERVED_ROOMS and room != LOGGING_ROOM:
            raise ProtocolError(ErrorCode.RESERVED_ROOM, f"{room} cannot be joined", ref)
        if room in conn.rooms:
            return
        if len(conn.rooms) >= self.max_rooms:
            raise ProtocolError(ErrorCode.TOO_MANY_ROOMS,
                                f"at most {self.max_rooms} rooms per connection", ref)
        conn.rooms.add(room)
        self.rooms.setdefault(room, set()).add(conn)
        service = self.service_for(room)
        if service is not None:
            await service.joined(conn, room)

    async def leave(self, conn: Connection, room: str) -> None:
        if room not in conn.rooms:
            return
        conn.rooms.discard(room)
        members = self.rooms.get(room)
        if members is not None:
            members.discard(conn)
            if not members:
                del self.rooms[room]
        service = self.service_for(room)
        if service is not None:
            await service.left(conn, room)

    async def disconnect(self, conn: Connection) -> None:
        """Forget a connection entirely; idempotent, called on every kind of close."""
        self.connections.discard(conn)
        for room in list(conn.rooms):
            await self.leave(conn, room)
        await self._forget_name(conn)

    async def _forget_name(self, conn: Connection) -> None:
        if conn.name is not None and self.names.get(conn.name) is conn:
            del self.names[conn.name]
            await self.broker.release(conn.name)

    # -- messages ----------------------------------------------------------

    async def handle(self, conn: Connection, message: Message, *, text: str | None = None) -> None:
        """Act on one validated message from `conn`; raise ProtocolError to refuse it.

        `text` is the frame as received when it can be relayed as it came (it has
        an ID and no SENT_BY); the Hub then appends SENT_BY instead of re-encoding.
        """
        if not conn.is_open:
            # Frames read before a close (taken over, too slow) must not act any
            # more: the name may already belong to a newer connection.
            return
        kind = message[TYPE]
        if conn in self.pipes and kind not in PIPELINED_TYPES:
            await self.pipes.drain(conn)  # what it sent before comes first, errors and all
        if kind not in SERVER_COMMANDS:  # the common case first: data, log, feedback
            if conn.name is None:
                raise ProtocolError(ErrorCode.NOT_REGISTERED, "send COMMAND/REGISTER first",
                                    message[ID])
            if conn.role is _LABELER:
                self.access.check(conn.role, message, sender=conn.name)
            await self.route(conn, message, text=text)
            return
        ref = message[ID]
        if kind == MessageType.REGISTER:
            role, credential = self.access.admit(message)
            message[ROLE] = role.value
            await self.register(conn, message, credential)
            return
        if conn.name is None:
            raise ProtocolError(ErrorCode.NOT_REGISTERED, "send COMMAND/REGISTER first", ref)
        if conn.role is Role.LABELER:
            self.access.check(conn.role, message)
        if kind == MessageType.JOINROOM:
            if message[ROOM] != COMMAND_ROOM:  # swergio 0.0.2 clients join it; nothing to do
                await self.join(conn, message[ROOM], ref=ref)
        elif kind == MessageType.LEAVEROOM:
            await self.leave(conn, message[ROOM])
        elif kind == MessageType.DISCONNECT:
            await self.disconnect(conn)
            conn.close_soon(CloseCode.NORMAL, "disconnected")

    async def route(self, conn: Connection, message: Message, *, text: str | None = None) -> None:
        """Deliver a data/log/feedback message to its room and/or named recipient."""
        ref = message[ID]
        room = message.get(TO_ROOM)
        to = message.get(TO)
        if room == COMMAND_ROOM:
            raise ProtocolError(ErrorCode.RESERVED_ROOM, "only commands go to _command", ref)
        if room is not None and room not in conn.rooms:
            raise ProtocolError(ErrorCode.NOT_IN_ROOM, f"join {room} before sending to it", ref)
        if to is not None and to not in self.names and not await self.broker.is_online(to):
            raise ProtocolError(ErrorCode.UNKNOWN_RECIPIENT, f"nobody named {to} is online", ref)
        sender = conn.name
        message[SENT_BY] = sender
        if self.metrics is not None:
            self.metrics.relayed(message[TYPE])
        if self.services:
            service = self.service_for(room) if room is not None else None
            if service is not None:
                await service.handle(conn, message)
                return
        text = encode(message) if text is None else stamp_sender(text, sender)  # type: ignore[arg-type]
        self._fan_out(message, text, room, to, sender)
        if self.broker.distributed:
            await self.broker.publish(Envelope(text=text, room=room, to=to, exclude=sender))

    async def publish(self, message: Message, *, exclude: str | None = None,
                      text: str | None = None) -> None:
        """Deliver `message` by its TO_ROOM and TO, here and on every other node.

        `text`, when given, is `message` already encoded.
        """
        if text is None:
            text = encode(message)
        room, to = message.get(TO_ROOM), message.get(TO)
        self._fan_out(message, text, room, to, exclude)
        if self.broker.distributed:
            await self.broker.publish(Envelope(text=text, room=room, to=to, exclude=exclude))

    def _fan_out(self, message: Message, text: str, room: str | None, to: str | None,
                 exclude: str | None) -> None:
        count = self.deliver_local(text, room=room, to=to, exclude=exclude)
        if self.metrics is not None:
            self.metrics.delivered(message[TYPE], count)
        if message[TYPE] in MIRRORED_TYPES:
            self.mirror(text)

    def deliver_local(self, text: str, *, room: str | None, to: str | None,
                      exclude: str | None) -> int:
        """Write one frame to local room members and the named recipient, each once."""
        count = 0
        target = self.names.get(to) if to is not None else None
        if room is not None:
            for member in self.rooms.get(room, ()):
                if member.name != exclude:
                    member.deliver(text)
                    count += 1
            if target is not None and room in target.rooms and target.name != exclude:
                target = None  # already served by the room
        if target is not None:
            target.deliver(text)
            count += 1
        self.delivered += count
        return count

    def mirror(self, text: str) -> None:
        """Copy a DATA/FORWARD or DATA/GRADIENT into _logging, as swergio 0.0.2 did.

        Produced once, by the node the message entered on; brokers carry it as
        an ordinary room message.
        """
        if LOGGING_ROOM not in self.rooms and not self.broker.distributed:
            return
        log_text = logging_mirror(text)
        self.deliver_local(log_text, room=LOGGING_ROOM, to=None, exclude=None)
        if self.broker.distributed:
            self.broker.publish_nowait(Envelope(text=log_text, room=LOGGING_ROOM, to=None,
                                                exclude=None))

    def send_to(self, conn: Connection, message: Message) -> None:
        """Server → one local connection (ERROR, FEEDBACK/TASK, ...)."""
        message.setdefault(ID, new_id())
        conn.deliver(encode(message))
        if self.metrics is not None:
            self.metrics.delivered(message[TYPE], 1)

    def members(self, room: str) -> Iterable[Connection]:
        return tuple(self.rooms.get(room, ()))

    def _taken_over_elsewhere(self, name: str) -> None:
        conn = self.names.pop(name, None)
        if conn is not None:
            log.info("%s registered again on another node; closing %s", name, conn.remote)
            conn.close_soon(CloseCode.TAKEN_OVER, "name taken over by a newer connection")

    def _from_broker(self, envelope: Envelope) -> None:
        count = self.deliver_local(envelope.text, room=envelope.room, to=envelope.to,
                                   exclude=envelope.exclude)
        if self.metrics is not None:
            self.metrics.delivered("remote", count)
