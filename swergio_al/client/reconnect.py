"""Staying connected: after the link drops, reconnect with backoff or stop for good.

`Reconnecting` is a mixin of `Connection`, which sets the attributes declared
here and starts `_supervise` once the first connection is up.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import aiohttp

from swergio_al.client.state import ComponentState, RefusedError, backoff_delays
from swergio_al.protocol import CloseCode

log = logging.getLogger(__name__)

# Closes after which reconnecting cannot help: someone else owns the name, or we may not enter.
_FINAL_CLOSE_CODES = frozenset({CloseCode.TAKEN_OVER, CloseCode.UNAUTHORIZED,
                                CloseCode.POLICY_VIOLATION})


class Reconnecting:
    """The supervisor of a Component's connection: reconnects until it may not."""

    # Set by Connection.__init__ (and its connect()).
    name: str
    reconnect: bool
    backoff_initial: float
    backoff_max: float
    random_state: int | None
    _state: ComponentState
    _ws: aiohttp.ClientWebSocketResponse | None
    _reader: asyncio.Task[None] | None
    _up: asyncio.Event | None
    _stop_reason: str | None
    # Connection's methods.
    _open: Callable[[], Awaitable[None]]  # one connection attempt
    _set_state: Callable[[ComponentState], None]
    _spawn: Callable[[Awaitable[None], str], asyncio.Task[None]]  # an owned task
    close: Callable[[], Awaitable[None]]

    async def _supervise(self) -> None:
        """Reconnect with capped, fully jittered exponential backoff whenever the link drops."""
        rng = random.Random(self.random_state)
        try:
            await self._keep_connected(rng)
        except Exception:  # a bug here must not leave a silently dead component
            self._stop_reason = "reconnect loop failed"
            log.exception("%s: %s", self.name, self._stop_reason)
        self._spawn(self.close(), "close")

    async def _keep_connected(self, rng: random.Random) -> None:
        assert self._up is not None
        while True:
            assert self._reader is not None and self._ws is not None
            await asyncio.gather(self._reader, return_exceptions=True)
            code = self._ws.close_code
            self._up.clear()
            if self._state is ComponentState.CLOSED:
                return
            if code in _FINAL_CLOSE_CODES:
                self._stop_reason = (
                    f"name {self.name!r} was taken over by another connection"
                    if code == CloseCode.TAKEN_OVER else f"server closed with {code}")
                log.warning("%s: %s; not reconnecting", self.name, self._stop_reason)
                break
            if not self.reconnect:
                self._stop_reason = f"connection lost (close code {code})"
                log.warning("%s: %s; reconnect is off", self.name, self._stop_reason)
                break
            self._set_state(ComponentState.RECONNECTING)
            log.warning("%s: connection lost (close code %s); reconnecting", self.name, code)
            if not await self._reconnect(rng):
                break

    async def _reconnect(self, rng: random.Random) -> bool:
        delays = backoff_delays(self.backoff_initial, self.backoff_max, rng)
        attempt = 0
        while self._state is ComponentState.RECONNECTING:
            await asyncio.sleep(next(delays))
            attempt += 1
            try:
                await self._open()
                return True
            except RefusedError as error:
                self._stop_reason = f"registration refused: {error}"
                log.error("%s: %s; not reconnecting", self.name, self._stop_reason)
                return False
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                log.info("%s: reconnect attempt %d failed: %s", self.name, attempt, exc)
        return False
