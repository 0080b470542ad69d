"""Leases that end without a label: run out, or given back when their labeler leaves.

`LeaseReturns` is a mixin of `FeedbackService`, which sets the attributes
declared here (and in the mixins it builds on). Either way the tasks go back
to the queue, the other nodes hear of it and the room's labelers are topped up.
"""

from __future__ import annotations

import asyncio
import logging

from swergio_al.feedback.gold import gold_room
from swergio_al.feedback.queue_signals import QueueSignals
from swergio_al.feedback.records import StoreError, Task

log = logging.getLogger(__name__)


class LeaseReturns(QueueSignals):
    """Lease expiry, and the leases of a labeler who left."""

    async def _return_leases(self, room: str, labeler: str) -> None:
        try:
            returned = await self.store.release(room, labeler, now=self.clock())
            await self.store.release(gold_room(room), labeler, now=self.clock())
            if returned:
                self._announce(room, count=len(returned))
                await self._fill_room(room, budget=len(returned))
        except StoreError as exc:
            log.warning("could not return the tasks of %s in %s: %s", labeler, room, exc)

    async def _expire_leases(self) -> None:
        interval = max(0.02, min(self.lease_seconds / 4, 5.0))
        while True:
            await asyncio.sleep(interval)
            try:
                expired = [self.desk.as_seen(t) for t in await self.store.expire(now=self.clock())]
                if self.metrics is not None:
                    self.metrics.leases_expired(len(expired))
                rooms: dict[str, list[Task]] = {}
                for task in expired:
                    self._forget(task, idle=True)
                    rooms.setdefault(task.request.room, []).append(task)
                for room, tasks in rooms.items():
                    self._touch(room)
                    self._announce(room, ended=tasks, count=len(tasks))
                    await self._fill_room(room, budget=len(tasks))
            except StoreError as exc:
                log.warning("lease expiry failed, retrying: %s", exc)
