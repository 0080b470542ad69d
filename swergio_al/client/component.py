"""`Component`: a named participant of the relay (connection + handlers + request/reply)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from swergio_al.client.handlers import Handlers
from swergio_al.protocol import ID, ROOT_ID, Message, new_id

log = logging.getLogger(__name__)


class Component(Handlers):
    """A named participant of the relay; see the `swergio_al.client` docstring."""

    async def request(self, message: Message, timeout: float = 10.0) -> Message:
        """Send `message` and return the first incoming message with its ROOT_ID.

        ROOT_ID defaults to the message's ID. Raises TimeoutError when nothing
        comes back within `timeout` and RefusedError when the server refuses it.
        The reply is handed to the caller only, not to handlers.
        """
        outgoing = dict(message)
        outgoing.setdefault(ID, new_id())
        outgoing.setdefault(ROOT_ID, outgoing[ID])
        reply = self._replies.open(outgoing)
        try:
            async with asyncio.timeout(timeout):
                await self.send(outgoing)
                return await reply
        finally:
            self._replies.discard(outgoing)

    def run_forever(self) -> None:
        """Connect and serve until closed, Ctrl-C or SIGTERM; for scripts (owns the event loop).

        Both signals close the component properly (DISCONNECT, tasks ended) and
        return normally, so a process manager stopping it sees exit code 0.
        """

        async def main() -> None:
            main_task = asyncio.current_task()
            assert main_task is not None
            loop = asyncio.get_running_loop()
            with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
                loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
            try:
                await self.connect()
                await self.wait_closed()
            except asyncio.CancelledError:
                log.info("%s: stopping", self.name)
            finally:
                await self.close()
                with contextlib.suppress(NotImplementedError):
                    loop.remove_signal_handler(signal.SIGTERM)

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            log.info("%s: interrupted, closed", self.name)
