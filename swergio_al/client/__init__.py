"""The asyncio component client: handlers, triggers, request/reply, automatic reconnect.

A `Component` is one participant of the relay. It registers under a name,
joins rooms and reacts to messages with handlers::

    world = Component("world", "ws://127.0.0.1:8080/ws")

    @world.on("DATA/TEXT", room="galactic_chat")
    async def answer(message):
        return {"DATA": "hello " + message["SENT_BY"]}

    async with world:
        await world.wait_closed()

Incoming messages are dispatched one at a time, in arrival order: a handler
(sync or async) finishes before the next message is looked at, so a
component's own state needs no locks (`on(..., concurrent=True)` opts a
handler out). A sync handler runs on the event loop; move slow work to
`asyncio.to_thread`. Replies to `request()` and the component's own round
trips are picked off before dispatch, so a handler may await `request()`
without deadlocking.
"""

from swergio_al.client.component import Component
from swergio_al.client.handlers import Handler
from swergio_al.client.link import SYNC
from swergio_al.client.process import run_until_stopped
from swergio_al.client.state import (
    ComponentState,
    NotConnectedError,
    RefusedError,
    backoff_delays,
)

__all__ = ["SYNC", "Component", "ComponentState", "Handler", "NotConnectedError", "RefusedError",
           "backoff_delays", "run_until_stopped"]
