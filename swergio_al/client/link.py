"""The frames layer under a Component: reading, routing, round trips and sending while up.

`Link` is a mixin of `Connection`, which owns the socket and sets the
attributes declared here; it holds what happens to frames on a live
connection, `Connection` what makes and remakes the connection.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp

from swergio_al.client.addressing import PendingReplies
from swergio_al.client.state import ComponentState, NotConnectedError, RefusedError
from swergio_al.protocol import (
    ID,
    SENT_BY,
    TO,
    TYPE,
    Message,
    MessageType,
    ProtocolError,
    decode,
    encode,
    new_id,
)

log = logging.getLogger(__name__)

SYNC = "SYNC"  # payload key of the round-trip marker a component sends to itself
SEND_FAILURES = (ConnectionError, aiohttp.ClientError)


@dataclass(eq=False)
class RoundTrip:
    """Frames whose handling we wait for; ERRORs referring to them are collected."""

    ids: frozenset[str]
    done: asyncio.Future[None]
    errors: list[Message]


class Link:
    """Frames on a live connection: route what comes in, prove what went out was handled."""

    # Set by Connection.__init__ (and its connect()).
    name: str
    send_timeout: float
    _state: ComponentState
    _ws: aiohttp.ClientWebSocketResponse | None
    _up: asyncio.Event | None
    _inbox: asyncio.Queue[Message] | None
    _round_trips: dict[str, RoundTrip]
    _replies: PendingReplies
    _joins: set[asyncio.Task[None]]

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Read frames until the connection ends; route each one."""
        try:
            async for frame in ws:
                if frame.type is aiohttp.WSMsgType.TEXT:
                    try:
                        message = decode(frame.data)
                    except ProtocolError as error:
                        log.warning("%s: unreadable frame from server: %s", self.name,
                                    error.message)
                        continue
                    self._route(message)
                elif frame.type is aiohttp.WSMsgType.ERROR:
                    log.info("%s: websocket error: %s", self.name, ws.exception())
        finally:
            lost = ConnectionError(f"connection lost (close code {ws.close_code})")
            for trip in self._round_trips.values():
                if not trip.done.done():
                    trip.done.set_exception(lost)

    def _route(self, message: Message) -> None:
        """Settle round trips and requests here; queue everything else for handlers."""
        kind = message.get(TYPE)
        if kind == MessageType.ERROR.value:
            if self._settle_error(message):
                return
        elif message.get(SENT_BY) == self.name and str(message.get(SYNC)) in self._round_trips:
            trip = self._round_trips[str(message[SYNC])]
            if not trip.done.done():
                trip.done.set_result(None)
            return
        elif self._replies.claim(message):
            return
        assert self._inbox is not None
        self._inbox.put_nowait(message)

    def _settle_error(self, error: Message) -> bool:
        """Hand an ERROR to whoever waits on the message it refers to; False if nobody does."""
        ref = error.get("REF")
        marked = self._round_trips.get(ref) if isinstance(ref, str) else None
        if marked is not None:  # refused marker: handled all the same (see _round_trip)
            if not marked.done.done():
                marked.done.set_result(None)
            return True
        for trip in self._round_trips.values():
            if ref in trip.ids:
                trip.errors.append(error)
                return True
        return self._replies.refuse(ref, RefusedError(error))

    async def _round_trip(self, ws: aiohttp.ClientWebSocketResponse, frames: list[Message],
                          *, fatal: str | None = None) -> None:
        """Send `frames`, then a marker to ourselves; when it is back, all were handled.

        The server handles a connection's frames in order, so the marker's echo
        -- or an ERROR about the marker, for a role that may not message itself
        (labelers) -- proves the frames before it were dealt with. Raises
        RefusedError for the first ERROR the server sent about the frames.
        """
        marker = new_id()
        trip = RoundTrip(frozenset(f[ID] for f in frames),
                          asyncio.get_running_loop().create_future(), [])
        self._round_trips[marker] = trip
        try:
            async with asyncio.timeout(self.send_timeout):
                for frame in frames:
                    await ws.send_str(encode(frame))
                await ws.send_str(encode({ID: marker, TYPE: MessageType.DATA_CUSTOM.value,
                                          TO: self.name, SYNC: marker}))
                await trip.done
        except ConnectionError:
            if not trip.errors:
                raise
            # The server refused something and then closed (a bad TOKEN, for one).
        finally:
            del self._round_trips[marker]
        for error in trip.errors:
            if fatal is None or error.get("REF") == fatal:
                raise RefusedError(error)
            log.warning("%s: server refused %s", self.name, error.get("MESSAGE"))

    async def _round_trip_when_up(self, frames: list[Message]) -> None:
        async with asyncio.timeout(self.send_timeout):
            while True:
                ws = await self._wait_up()
                try:
                    await self._round_trip(ws, frames)
                    return
                except SEND_FAILURES:
                    # Lost mid-way: wait for the reconnect, then try again.
                    if self._state is ComponentState.CLOSED:
                        raise
                    self._mark_down(ws)

    async def _wait_up(self) -> aiohttp.ClientWebSocketResponse:
        if self._state is ComponentState.NEW:
            raise NotConnectedError(f"component {self.name!r} is not connected; "
                                    "call connect() first")
        if self._state is ComponentState.CLOSED:
            raise NotConnectedError(f"component {self.name!r} is closed")
        assert self._up is not None
        await self._up.wait()
        if self._state is ComponentState.CLOSED:
            raise NotConnectedError(f"component {self.name!r} is closed")
        assert self._ws is not None
        return self._ws

    async def _send_text(self, text: str) -> None:
        if self._joins and asyncio.current_task() not in self._joins:
            # What is sent after on(..., room=...) must find the room joined.
            await asyncio.gather(*list(self._joins), return_exceptions=True)
        try:
            async with asyncio.timeout(self.send_timeout):
                while True:
                    ws = await self._wait_up()
                    try:
                        await ws.send_str(text)
                        return
                    except SEND_FAILURES:
                        if self._state is ComponentState.CLOSED:
                            raise NotConnectedError(f"component {self.name!r} is closed") from None
                        self._mark_down(ws)
        except TimeoutError:
            raise NotConnectedError(f"{self.name}: not connected within "
                                    f"{self.send_timeout}s; message not sent") from None

    def _mark_down(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """A write on `ws` failed: hold senders until the supervisor has reconnected."""
        if self._ws is ws and self._up is not None:
            self._up.clear()

    def _fail_waiters(self, error: Exception) -> None:
        for trip in self._round_trips.values():
            if not trip.done.done():
                trip.done.set_exception(error)
        self._replies.fail_all(error)
