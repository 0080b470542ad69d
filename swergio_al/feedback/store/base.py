"""The store interface: everything the FeedbackService needs to keep durably.

Every method that changes more than one row does it in one transaction, and
`claim` is atomic across server processes (SQLite: one writer; PostgreSQL:
`FOR UPDATE SKIP LOCKED`). Times are unix seconds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence

from swergio_al.feedback.records import (
    FeedbackRequest,
    KpiPoint,
    Label,
    LabelerStats,
    RoomStats,
    Submitted,
    Task,
)

# A model's KPI history is thinned (every second point dropped) past this many
# points: the whole curve stays, at a coarser grain the longer it gets.
KPI_KEEP = 1000
# The median seconds per label is taken over each labeler's most recent labels.
MEDIAN_WINDOW = 200


class Store(ABC):
    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date (runs pending migrations)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def schema_version(self) -> int: ...

    # -- requests ----------------------------------------------------------

    @abstractmethod
    async def submit(self, request: FeedbackRequest, *, max_pending: int,
                     now: float) -> Submitted:
        """Store a request, deduplicated by (room, sample_id).

        A pending one gets the new priority and fields; a canceled one is
        reopened; a labeled one is left alone. Raises LimitReached when the
        requester already has `max_pending` open requests.
        """

    @abstractmethod
    async def cancel(self, room: str, requester: str, sample_ids: Sequence[str | int], *,
                     now: float, keep_leased: bool = False) -> list[Task]:
        """Cancel the requester's open requests; returns their tasks that were leased.

        With `keep_leased`, a request a labeler holds (a task still LEASED: the
        expiry sweep ends lapsed ones) stays open and unchanged instead, and
        nothing is withdrawn: the tasks returned are those leases, kept.
        """

    @abstractmethod
    async def rescore(self, room: str, requester: str,
                      priorities: Mapping[str | int, float], *, now: float) -> int:
        """Set new priorities on the requester's open requests; returns how many."""

    @abstractmethod
    async def raise_overlap(self, room: str, requester: str, sample_id: str | int,
                            overlap: int, *, now: float) -> bool:
        """Let the requester's request take `overlap` answers in all; a done one opens again.

        False when it is unknown, canceled, or already allows that many (adaptive
        overlap asks for one more answer at a time).
        """

    # -- tasks -------------------------------------------------------------

    @abstractmethod
    async def claim(self, room: str, labeler: str, *, lease_seconds: float,
                    now: float) -> Task | None:
        """Atomically lease the most urgent open request this labeler may take.

        Not one they skipped, already labeled or hold right now; among equal
        priorities the oldest first.
        """

    async def claim_many(self, room: str, wants: Sequence[tuple[str, int]], *,
                         lease_seconds: float, now: float) -> list[Task]:
        """Lease up to `count` tasks to each `(labeler, count)`, in that order.

        One transaction where the backend can: several labelers hungry at once
        cost one commit, not one each. A labeler for whom nothing is left gets
        none; the others are still served.
        """
        tasks: list[Task] = []
        for labeler, count in wants:
            for _ in range(count):
                task = await self.claim(room, labeler, lease_seconds=lease_seconds, now=now)
                if task is None:
                    break
                tasks.append(task)
        return tasks

    @abstractmethod
    async def task(self, task_id: str) -> Task | None: ...

    @abstractmethod
    async def leased_to(self, room: str, labeler: str, *, now: float) -> list[Task]:
        """The labeler's unexpired leases in the room (to re-send after a reconnect)."""

    @abstractmethod
    async def skip(self, task_id: str, labeler: str, *, now: float) -> Task:
        """Give a leased task back; it will not be offered to this labeler again.

        Raises UnknownTask or NotYourTask.
        """

    @abstractmethod
    async def release(self, room: str, labeler: str, *, now: float) -> list[Task]:
        """Return all of the labeler's leases in the room (they left or disconnected)."""

    @abstractmethod
    async def expire(self, *, now: float) -> list[Task]:
        """Return every lease that ran out before `now`."""

    # -- labels ------------------------------------------------------------

    @abstractmethod
    async def record_label(self, task_id: str, labeler: str, answer: object,
                           seconds: float | None, *, label_id: str, now: float) -> Label:
        """Commit (durably, fsync'd) a label for a leased task and close the task.

        Raises UnknownTask (no such task, or not leased any more) or NotYourTask.
        """

    async def label_and_claim(self, task_id: str, labeler: str, answer: object,
                              seconds: float | None, *, label_id: str, now: float, claim: int,
                              lease_seconds: float) -> tuple[Label, list[Task]]:
        """`record_label`, then lease up to `claim` more tasks to the same labeler.

        Backends do both in the one transaction that commits the label: the
        common path of a busy crowd (label in, next task out) is one commit.
        """
        label = await self.record_label(task_id, labeler, answer, seconds, label_id=label_id,
                                        now=now)
        tasks = await self.claim_many(label.room, [(labeler, claim)],
                                      lease_seconds=lease_seconds, now=now) if claim else []
        return label, tasks

    @abstractmethod
    async def ack(self, label_id: str, requester: str, *, now: float) -> bool:
        """Mark the requester's label as received; False if it is not theirs or unknown."""

    @abstractmethod
    async def label_of_task(self, task_id: str) -> Label | None:
        """The label recorded for a task, if any (a labeler may send it again after a
        crash ate its ACK)."""

    @abstractmethod
    async def unacked(self, requester: str) -> list[Label]: ...

    @abstractmethod
    async def history(self, room: str, requester: str) -> list[Label]: ...

    @abstractmethod
    def labels(self, *, room: str | None = None, batch: int = 1000) -> AsyncIterator[Label]:
        """Every label (of one room), oldest first, fetched in batches."""

    # -- numbers -----------------------------------------------------------

    @abstractmethod
    async def stats(self, room: str, *, now: float) -> RoomStats: ...

    @abstractmethod
    async def rooms(self) -> list[str]:
        """Every room that has requests."""

    @abstractmethod
    async def open_question(self, room: str) -> str | None:
        """The question of the most urgent open request in the room (for the landing page)."""

    @abstractmethod
    async def labeler_stats(self, room: str) -> list[LabelerStats]:
        """Per labeler in the room: labels, median seconds (recent labels), skips."""

    # -- KPI history -------------------------------------------------------

    @abstractmethod
    async def record_kpi(self, room: str, model: str, data: Mapping[str, object], *,
                         now: float, keep: int = KPI_KEEP) -> None:
        """Keep one LOG/KPI report; past `keep` points for (room, model) every second
        one is dropped (the first and the newest stay)."""

    @abstractmethod
    async def kpi_history(self, *, room: str | None = None,
                          model: str | None = None) -> list[KpiPoint]:
        """Kept KPI reports, oldest first (of one room and/or model)."""
