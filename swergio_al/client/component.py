"""`Component`: a named participant of the relay (connection + handlers + request/reply)."""

from __future__ import annotations

import asyncio
import logging

from swergio_al.client.handlers import Handlers
from swergio_al.client.process import run_until_stopped
from swergio_al.protocol import ID, ROOT_ID, Message, new_id

log = logging.getLogger(__name__)


class Component(Handlers):
    """A named participant of the relay; see the `swergio_al.client` docstring."""

    async def request(self, message: Message, timeout: float = 10.0, *,
                      expect: str | None = None, resend_after: float | None = None) -> Message:
        """Send `message` and return the first incoming message with its ROOT_ID.

        ROOT_ID defaults to the message's ID. With `expect`, only a reply of that
        TYPE counts (a DATA/FORWARD answered by its DATA/GRADIENT, say); other
        messages with the ROOT_ID go to the handlers. With `resend_after`, the
        message is sent again (same ROOT_ID, new ID) each time that many seconds
        pass without a reply, so a request survives a peer that restarts and
        never saw it; the peer must tolerate duplicates. Raises TimeoutError when
        nothing comes back within `timeout` and RefusedError when the server
        refuses it. The reply is handed to the caller only, not to handlers.
        """
        if resend_after is not None and not resend_after > 0:
            raise ValueError(f"resend_after must be a positive number of seconds, "
                             f"got {resend_after!r}")
        outgoing = dict(message)
        outgoing.setdefault(ID, new_id())
        outgoing.setdefault(ROOT_ID, outgoing[ID])
        reply = self._replies.open(outgoing, expect)
        try:
            async with asyncio.timeout(timeout):
                await self.send(outgoing)
                while resend_after is not None:
                    try:
                        return await asyncio.wait_for(asyncio.shield(reply), resend_after)
                    except TimeoutError:
                        again = {**outgoing, ID: new_id()}
                        self._replies.resent(again)
                        log.info("%s: no reply to %s within %gs; sending it again", self.name,
                                 outgoing[ROOT_ID], resend_after)
                        await self.send(again)
                return await reply
        finally:
            self._replies.discard(outgoing)

    def run_forever(self) -> None:
        """Connect and serve until closed, Ctrl-C or SIGTERM; for scripts (owns the event loop).

        Both signals close the component properly (DISCONNECT, tasks ended) and
        return normally, so a process manager stopping it sees exit code 0.
        """

        async def serve() -> None:
            async with self:
                await self.wait_closed()

        run_until_stopped(serve())
