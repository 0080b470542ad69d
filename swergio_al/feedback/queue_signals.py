"""Several nodes: the services of other nodes hear of every change to a room's queue.

`QueueSignals` is a mixin of `FeedbackService`, which sets the attributes
declared here. With the Redis broker each change to a room's queue is signalled
to the other nodes: work to hand to their labelers, leases this node ended
(expired) or the requester canceled that a labeler there holds. It builds on
`Dispatch`: what it hears ends in a fill of this node's labelers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from swergio_al.feedback.dispatch import Dispatch
from swergio_al.feedback.presence import PRESENCE_SIGNAL, Presence
from swergio_al.feedback.records import StoreError, Task

log = logging.getLogger(__name__)

# Broker signal between the services of several nodes: a room's queue changed.
QUEUE_SIGNAL = "feedback/queue"


def _task_ids(value: Any) -> list[str]:
    return [t for t in value if isinstance(t, str)] if isinstance(value, list) else []


class QueueSignals(Dispatch):
    """Telling the other nodes of a room's queue changes, and topping up after theirs."""

    # Set by FeedbackService.__init__.
    presence: Presence
    _stale: dict[str, int | None]
    _refilling: set[str]
    _withdrawn: dict[str, list[Task]]
    owns: Callable[[str], bool]  # a room of the service (FeedbackService)
    _spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]  # an owned chore

    def _announce(self, room: str, *, count: int, ended: Iterable[Task] = (),
                  canceled: Iterable[Task] = ()) -> None:
        """`count`: how many tasks the change can have made claimable (that many
        labelers are asked on the other nodes, not all of them)."""
        self.hub.broker.signal(QUEUE_SIGNAL, {"room": room, "count": count,
                                              "ended": [t.task_id for t in ended],
                                              "canceled": [t.task_id for t in canceled]})

    def _on_signal(self, topic: str, data: dict[str, Any]) -> None:
        if topic == PRESENCE_SIGNAL:
            for changed in self.presence.heard(data):
                self._touch(changed)
            return
        room = data.get("room")
        if topic != QUEUE_SIGNAL or not isinstance(room, str) or not self.owns(room):
            return
        for task_id in _task_ids(data.get("ended")):
            task = self._tasks.get(task_id)
            if task is not None:  # its lease ran out, as if it had expired here
                self._forget(task, idle=True)
        self._withdrawn.setdefault(room, []).extend(
            self._tasks[t] for t in _task_ids(data.get("canceled")) if t in self._tasks)
        count = data.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            count = None  # a node that does not say: everyone hungry is asked
        before = self._stale.get(room, 0)
        self._stale[room] = None if count is None or before is None else before + count
        if room not in self._refilling:
            self._refilling.add(room)
            self._spawn(self._refill(room))

    async def _refill(self, room: str) -> None:
        """Top up this node's labelers after changes elsewhere; a burst of signals
        (many requests at once) costs a few runs, not one each."""
        try:
            while room in self._stale:
                budget = self._stale.pop(room)
                await self._withdraw(self._withdrawn.pop(room, []))
                self._touch(room)
                if budget != 0:
                    await self._fill_room(room, budget=budget)
        except StoreError as exc:
            log.warning("could not hand out the tasks of %s: %s", room, exc)
        finally:
            self._refilling.discard(room)
