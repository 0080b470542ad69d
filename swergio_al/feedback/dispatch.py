"""Who gets the next task: the FeedbackService's fill path.

`Dispatch` is a mixin of `FeedbackService`, which sets the attributes declared
here: each room's labelers on this node sit in a `Crowd`; tasks are claimed for
the hungriest of them in one store call and handed out, gold questions mixed in
by the `QualityDesk`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from swergio_al.feedback.crowd import Crowd, Seat
from swergio_al.feedback.gold import QualityDesk, gold_room
from swergio_al.feedback.records import Task
from swergio_al.feedback.store import Store
from swergio_al.protocol import DATA, ID, TO, TO_ROOM, TYPE, MessageType, new_id
from swergio_al.relay.connection import Connection
from swergio_al.relay.hub import Hub

if TYPE_CHECKING:
    from swergio_al.metrics import Metrics


class Dispatch:
    """Leasing tasks to a room's labelers on this node, the least busy first."""

    # Set by FeedbackService.__init__.
    hub: Hub
    store: Store
    desk: QualityDesk
    prefetch: int
    lease_seconds: float
    clock: Callable[[], float]
    metrics: Metrics | None
    _tasks: dict[str, Task]
    _crowds: dict[str, Crowd]
    _touch: Callable[[str], None]  # the room's figures changed (StatsBroadcast)

    def _crowd(self, room: str) -> Crowd:
        crowd = self._crowds.get(room)
        if crowd is None:
            crowd = self._crowds[room] = Crowd(self.prefetch)
        return crowd

    def _local_labelers(self, room: str) -> int:
        crowd = self._crowds.get(room)
        return 0 if crowd is None else len(crowd)

    def _seat(self, room: str, conn: Connection) -> Seat | None:
        """`conn`'s seat in `room`, if it is a labeler there."""
        crowd = self._crowds.get(room)
        seat = crowd.seats.get(conn.name) if crowd is not None and conn.name else None
        return seat if seat is not None and seat.conn is conn else None

    async def _fill(self, room: str, seat: Seat) -> None:
        """Lease tasks to one labeler until they hold `prefetch`, or nothing is left."""
        await self._claim_for(room, [seat])

    async def _fill_room(self, room: str, *, budget: int | None = None,
                         last: Seat | None = None) -> None:
        """Top up the hungry labelers of the room, the least busy and longest waiting
        first (`last` only if nobody else wants work).

        `budget` is how many tasks the change that prompted this can have made
        claimable (a new request: its overlap): that many labelers are asked, in
        one store transaction. Asking every hungry labeler would cost a claim
        each, per request, with many labelers and nothing to give them.
        """
        crowd = self._crowds.get(room)
        if crowd is None:
            return
        count = crowd.hungry_count() + crowd.claiming if budget is None else budget
        seats = crowd.next_hungry(count, last=last)
        if len(seats) < count and crowd.claiming:
            crowd.missed += count - len(seats)
        if seats:
            await self._claim_for(room, seats)

    async def _claim_for(self, room: str, seats: list[Seat]) -> None:
        """Claim for each seat what it lacks, all in one store call."""
        wants = [(seat, self.prefetch - seat.load) for seat in seats
                 if not seat.idle and seat.conn.is_open]
        wants = [(seat, n) for seat, n in wants if n > 0]
        if not wants:
            return
        crowd = self._crowd(room)
        for seat, n in wants:
            seat.reserved += n  # not hungry while its claim is under way
            crowd.place(seat)
        crowd.claiming += 1
        started = time.perf_counter()
        try:
            # Now and then a gold question instead, while one is left for them.
            tasks = await self._claim_gold(room, [seat.name for seat, _ in wants
                                                  if self.desk.gold_due(room, seat.name)])
            given = {task.labeler for task in tasks}
            rest = [(seat.name, n - (seat.name in given)) for seat, n in wants]
            tasks += await self.store.claim_many(room, [(name, n) for name, n in rest if n > 0],
                                                 lease_seconds=self.lease_seconds,
                                                 now=self.clock())
            if self.metrics is not None:
                self.metrics.store_write("claim", time.perf_counter() - started)
        finally:
            crowd.claiming -= 1
            for seat, n in wants:
                seat.reserved -= n
                crowd.place(seat)
        await self._hand_out(room, [seat for seat, _ in wants], tasks)

    async def _claim_gold(self, room: str, names: list[str]) -> list[Task]:
        if not names:
            return []
        tasks = await self.store.claim_many(gold_room(room), [(name, 1) for name in names],
                                            lease_seconds=self.lease_seconds, now=self.clock())
        return [self.desk.as_seen(task) for task in tasks]

    async def _hand_out(self, room: str, seats: list[Seat], tasks: list[Task]) -> None:
        """Send claimed tasks to their labelers; those who got none wait at the back."""
        by_name: dict[str, list[Task]] = {}
        for task in tasks:
            by_name.setdefault(task.labeler, []).append(task)
        crowd = self._crowds.get(room)
        for seat in seats:
            got = by_name.get(seat.name, [])
            if crowd is None or crowd.seats.get(seat.name) is not seat or \
                    not seat.conn.is_open:
                # They left while we claimed: give the tasks back (unless the name
                # has a new connection by now, which picks its leases up itself).
                if got and self.hub.names.get(seat.name) in (None, seat.conn):
                    await self.store.release(room, seat.name, now=self.clock())
                continue
            for task in got:
                seat.held.add(task.task_id)
                self._tasks[task.task_id] = task
                self._send_task(seat.conn, task)
            crowd.place(seat)
        if tasks:
            self._touch(room)
        if crowd is not None and crowd.missed and crowd.hungry_count():
            missed, crowd.missed = crowd.missed, 0
            await self._fill_room(room, budget=missed)

    async def _withdraw(self, tasks: Iterable[Task]) -> None:
        """Tell labelers that tasks they hold were canceled, and give them new ones."""
        refill: dict[tuple[str, str], Seat] = {}
        for task in tasks:
            self._forget(task)
            conn = self.hub.names.get(task.labeler)
            if conn is not None:
                self.hub.send_to(conn, {ID: new_id(), TYPE: MessageType.FEEDBACK_CANCEL.value,
                                        TO_ROOM: task.request.room, TO: task.labeler,
                                        DATA: {"task_ids": [task.task_id],
                                               "sample_ids": [task.request.sample_id]}})
                seat = self._seat(task.request.room, conn)
                if seat is not None:
                    refill[(task.request.room, task.labeler)] = seat
        for (room, _), seat in refill.items():
            await self._fill(room, seat)

    def _forget(self, task: Task, *, idle: bool = False) -> None:
        """The task is no longer held (labeled, skipped, ended); `idle`: its lease ran
        out, so its labeler gets nothing new until they act again."""
        self._tasks.pop(task.task_id, None)
        crowd = self._crowds.get(task.request.room)
        seat = crowd.seats.get(task.labeler) if crowd is not None else None
        if crowd is not None and seat is not None:
            seat.held.discard(task.task_id)
            seat.idle = seat.idle or idle
            crowd.place(seat)

    def _send_task(self, conn: Connection, task: Task) -> None:
        self.desk.handed(task)
        self.hub.send_to(conn, {ID: new_id(), TYPE: MessageType.FEEDBACK_TASK.value,
                                TO_ROOM: task.request.room, TO: task.labeler,
                                DATA: task.message_data()})
