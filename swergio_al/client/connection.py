"""The connection under a Component: register, rooms, sending, and reconnecting when it drops.

`Connection` owns the WebSocket, its reader, the reconnect supervisor and the
dispatcher task; frames on a live connection are `Link`'s (link.py), making the
connection again after it drops is `Reconnecting`'s (reconnect.py), what a
received message does is left to `_dispatch` (handlers.py), and replies
awaited by `request()` are claimed through `PendingReplies` (addressing.py)
before dispatch.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Self

import aiohttp

from swergio_al.client.addressing import PendingReplies
from swergio_al.client.link import SEND_FAILURES, Link, RoundTrip
from swergio_al.client.reconnect import Reconnecting
from swergio_al.client.state import (
    ComponentState,
    NotConnectedError,
    RefusedError,
    as_rooms,
)
from swergio_al.protocol import (
    COMMAND_ROOM,
    ID,
    NAME,
    ROLE,
    ROOM,
    TO_ROOM,
    TOKEN,
    TYPE,
    Message,
    MessageType,
    ProtocolError,
    Role,
    encode,
    new_id,
    validate,
)

log = logging.getLogger(__name__)

# aiohttp speaks WebSocket over http(s):// URLs too (the test fixtures hand those out).
_URL_SCHEMES = ("ws://", "wss://", "http://", "https://")


class Connection(Link, Reconnecting):
    """Registration, rooms, sending and reconnecting; the base of `Component`."""

    def __init__(self, name: str, url: str, *, role: str = "component", token: str | None = None,
                 reconnect: bool = True, backoff_initial: float = 0.2, backoff_max: float = 10.0,
                 random_state: int | None = None, send_timeout: float = 10.0,
                 heartbeat: float | None = 20.0) -> None:
        self.name = name
        self.url = url
        self.role = role
        self.token = token
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.random_state = random_state
        self.send_timeout = send_timeout
        self.heartbeat = heartbeat

        self._state = ComponentState.NEW
        self._on_connect: list[Callable[[], Any]] = []
        self._rooms: set[str] = set()
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._joins: set[asyncio.Task[None]] = set()  # rooms of handlers added while connected
        self._inbox: asyncio.Queue[Message] | None = None
        self._up: asyncio.Event | None = None
        self._closed: asyncio.Event | None = None
        self._round_trips: dict[str, RoundTrip] = {}
        self._replies = PendingReplies()
        self._stop_reason: str | None = None
        self._state_waiters: list[tuple[ComponentState, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.url} {self._state.value}>"

    # -- public state --------------------------------------------------------

    @property
    def state(self) -> ComponentState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is ComponentState.CONNECTED

    @property
    def stop_reason(self) -> str | None:
        """Why the component stopped by itself (name taken over, refused, ...), if it did."""
        return self._stop_reason

    @property
    def rooms(self) -> frozenset[str]:
        """Rooms this component is in (or will join on connect)."""
        return frozenset(self._rooms)

    async def wait_state(self, state: ComponentState) -> None:
        """Wait until the component is in `state` (e.g. RECONNECTING after a drop).

        Returns at once if it is; raises NotConnectedError if it closes first.
        """
        while self._state is not state:
            if self._state is ComponentState.CLOSED:
                raise NotConnectedError(f"component {self.name!r} closed before it was "
                                        f"{state.value}")
            changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._state_waiters.append((state, changed))
            try:
                await changed
            finally:
                self._state_waiters = [w for w in self._state_waiters if w[1] is not changed]

    def _set_state(self, state: ComponentState) -> None:
        self._state = state
        for wanted, changed in self._state_waiters:
            if (wanted is state or state is ComponentState.CLOSED) and not changed.done():
                changed.set_result(None)

    # -- lifecycle -----------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection, register and join every known room.

        Returns once the server has handled all of it. Raises ConnectionError
        (or aiohttp.ClientError) when the server cannot be reached and
        RefusedError when it refuses the registration.
        """
        if self._state is not ComponentState.NEW:
            raise RuntimeError(f"connect() expects state {ComponentState.NEW.value}, "
                               f"component {self.name!r} is {self._state.value}")
        self._validate_settings()
        self._set_state(ComponentState.CONNECTING)
        self._inbox = asyncio.Queue()
        self._up = asyncio.Event()
        self._closed = asyncio.Event()
        self._session = aiohttp.ClientSession()
        self._dispatcher = asyncio.create_task(self._dispatch_forever(),
                                               name=f"{self.name}-dispatch")
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name=f"{self.name}-supervise")

    async def close(self) -> None:
        """Say goodbye, close the connection, stop reconnecting, and end every owned task.

        May be called from inside a handler; the dispatcher then ends as soon as
        that handler returns.
        """
        if self._state is ComponentState.CLOSED:
            if self._closed is not None and self._dispatcher is not asyncio.current_task():
                await self._closed.wait()  # another close() is tearing down
            return
        was_up = self._state is ComponentState.CONNECTED
        self._set_state(ComponentState.CLOSED)
        if self._up is not None:
            self._up.set()  # wake senders waiting for a reconnect; they see CLOSED and give up
        current = asyncio.current_task()
        ws = self._ws
        if ws is not None and not ws.closed and was_up:
            goodbye = {ID: new_id(), TYPE: MessageType.DISCONNECT.value, TO_ROOM: COMMAND_ROOM}
            try:
                await asyncio.wait_for(ws.send_str(encode(goodbye)), 1.0)
            except (*SEND_FAILURES, TimeoutError) as exc:
                log.debug("%s: DISCONNECT not sent: %s", self.name, exc)
            else:
                await self._until_server_closes()
        owned = [self._supervisor, self._reader, *self._tasks]
        await _cancel_and_wait(t for t in owned if t is not None and t is not current)
        if ws is not None:
            await ws.close()
        if self._dispatcher is not None and self._dispatcher is not current:
            await _cancel_and_wait([self._dispatcher])
        self._fail_waiters(NotConnectedError(f"component {self.name!r} is closed"))
        if self._session is not None:
            await self._session.close()
        if self._closed is not None:
            self._closed.set()

    async def _until_server_closes(self) -> None:
        """Wait (up to `send_timeout`) for the server's close in answer to DISCONNECT.

        The server closes only after handling DISCONNECT, so everything sent
        before it has been handled too; the reader sees the close and completes
        the handshake. Cancelling the reader instead makes aiohttp drop the TCP
        connection at once, with frames still unread on the server.
        """
        reader = self._reader
        if reader is None or reader.done():
            return
        _, pending = await asyncio.wait([reader], timeout=self.send_timeout)
        if pending:
            log.info("%s: no close from the server within %gs of DISCONNECT", self.name,
                     self.send_timeout)

    async def wait_closed(self) -> None:
        """Wait until the component is closed (by close(), or for good by the server)."""
        if self._closed is None:
            raise RuntimeError(f"component {self.name!r} was never connected")
        await self._closed.wait()
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not asyncio.current_task():
            await asyncio.gather(dispatcher, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- rooms ---------------------------------------------------------------

    async def join(self, room: str) -> None:
        """Join `room`; returns after the server has handled it (at once before connect())."""
        as_rooms(room)
        self._rooms.add(room)
        if self._state is ComponentState.NEW:
            return
        frame = {ID: new_id(), TYPE: MessageType.JOINROOM.value, ROOM: room, TO_ROOM: COMMAND_ROOM}
        try:
            await self._round_trip_when_up([frame])
        except RefusedError:
            self._rooms.discard(room)
            raise

    async def leave(self, room: str) -> None:
        self._rooms.discard(room)
        if self._state is ComponentState.NEW:
            return
        frame = {ID: new_id(), TYPE: MessageType.LEAVEROOM.value, ROOM: room,
                 TO_ROOM: COMMAND_ROOM}
        await self._round_trip_when_up([frame])

    # -- sending -------------------------------------------------------------

    async def send(self, message: Message) -> Message:
        """Send a copy of `message` with an ID filled in; return that copy.

        While the connection is down this waits (up to `send_timeout`) for the
        reconnect instead of dropping the message. Raises ValueError for a
        message the server would refuse on its face (no TYPE, no recipient, ...).
        """
        if not isinstance(message, dict):
            raise TypeError(f"a message is a dict, got {type(message).__name__}")
        outgoing = dict(message)
        outgoing.setdefault(ID, new_id())
        try:
            validate(dict(outgoing))
        except ProtocolError as error:
            raise ValueError(f"cannot send {outgoing.get(TYPE)!r}: {error.message}") from None
        text = encode(outgoing)
        await self._send_text(text)
        return outgoing

    def on_connect(self, callback: Callable[[], Any]) -> Callable[[], Any]:
        """Call `callback()` (sync or async) after every (re)connection, once the
        component is registered and back in its rooms (decorator). Use it to resend
        what may have been lost with the old connection."""
        self._on_connect.append(callback)
        return callback

    async def _run_hook(self, callback: Callable[[], Any]) -> None:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("%s: on_connect callback %r failed", self.name, callback)

    # -- connection management ------------------------------------------------

    def _validate_settings(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.url, str) or not self.url.startswith(_URL_SCHEMES):
            raise ValueError(f"url must look like ws://host:port/ws, got {self.url!r}")
        if self.role not in (Role.COMPONENT.value, Role.LABELER.value):
            raise ValueError(f"role must be 'component' or 'labeler', got {self.role!r}")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")

    async def _open(self) -> None:
        """One connection attempt: connect, register, rejoin, prove it with a round trip."""
        assert self._session is not None and self._up is not None
        async with asyncio.timeout(self.send_timeout):  # a server that accepts but never answers
            ws = await self._session.ws_connect(self.url, heartbeat=self.heartbeat)
        self._ws = ws
        self._reader = asyncio.create_task(self._read(ws), name=f"{self.name}-read")
        register: Message = {ID: new_id(), TYPE: MessageType.REGISTER.value, NAME: self.name,
                             ROLE: self.role, TO_ROOM: COMMAND_ROOM}
        if self.token is not None:
            register[TOKEN] = self.token
        joins = [{ID: new_id(), TYPE: MessageType.JOINROOM.value, ROOM: room,
                  TO_ROOM: COMMAND_ROOM} for room in sorted(self._rooms)]
        try:
            await self._round_trip(ws, [register, *joins], fatal=register[ID])
        except BaseException:
            await _cancel_and_wait([self._reader])
            await ws.close()
            raise
        if self._state is ComponentState.CLOSED:
            return
        self._set_state(ComponentState.CONNECTED)
        self._up.set()
        for callback in self._on_connect:
            self._spawn(self._run_hook(callback), "on-connect")
        log.info("%s connected to %s (rooms: %s)", self.name, self.url,
                 ", ".join(sorted(self._rooms)) or "none")

    async def _join_rooms(self, rooms: list[str]) -> None:
        frames = [{ID: new_id(), TYPE: MessageType.JOINROOM.value, ROOM: room,
                   TO_ROOM: COMMAND_ROOM} for room in rooms]
        try:
            await self._round_trip_when_up(frames)
        except (RefusedError, NotConnectedError, TimeoutError, *SEND_FAILURES) as exc:
            log.warning("%s: joining %s failed: %s", self.name, ", ".join(rooms), exc)

    def _spawn(self, coro: Awaitable[None], label: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self.name}-{label}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._joins.discard)
        return task

    async def _dispatch_forever(self) -> None:
        assert self._inbox is not None
        while self._state is not ComponentState.CLOSED:
            message = await self._inbox.get()
            await self._dispatch(message)

    async def _dispatch(self, message: Message) -> None:
        """Act on one message that nobody waited for (handlers.py overrides this)."""
        log.debug("%s: no handlers; %s ignored", self.name, message.get(TYPE))


async def _cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
