"""The shared store: PostgreSQL through an asyncpg pool, for several server processes.

Same schema and semantics as the SQLite store. What several nodes need on top:
- `claim` picks its request with `FOR UPDATE SKIP LOCKED`, so two nodes
  claiming at once never lease the same request: one takes the next row.
- Every read that leads to a change locks the rows it reads (`FOR UPDATE`),
  and lease expiry is a single `UPDATE ... RETURNING`, so a label racing an
  expiry on another node either commits or finds the task expired, never both.
- Migrations run under a transaction-scoped advisory lock: nodes starting
  together apply each step once.
The pool, migrations and the URL's `?schema=` are in postgres_db.py, the reads
in postgres_reads.py; here are the queue's writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from swergio_al.feedback.coalesce import Coalescer
from swergio_al.feedback.records import (
    FeedbackRequest,
    Label,
    LimitReached,
    NotYourTask,
    RequestStatus,
    SampleId,
    Submitted,
    Task,
    TaskStatus,
    UnknownTask,
)
from swergio_al.feedback.store.pg_functions import NOT_YOUR_TASK, UNKNOWN_TASK
from swergio_al.feedback.store.postgres_db import PostgresError, _row
from swergio_al.feedback.store.postgres_reads import PostgresReads
from swergio_al.feedback.store.rows import _dump, _sample_key, _task

_REQUEST_COLUMNS = ("r.id, r.room, r.sample_id, r.sample_is_int, r.requester, r.kind, r.content, "
                    "r.answer, r.question, r.prediction, r.confidence, r.priority, r.overlap, "
                    "r.extra")
_TASK_COLUMNS = f"t.task_id, t.labeler, t.lease_expires, t.status, {_REQUEST_COLUMNS}"
_TASK_SELECT = f"SELECT {_TASK_COLUMNS} FROM tasks t JOIN requests r ON r.id = t.request_id"
_EXCLUDING = [TaskStatus.LEASED.value, TaskStatus.DONE.value, TaskStatus.SKIPPED.value]
_OPEN = RequestStatus.OPEN.value
_LEASED = TaskStatus.LEASED.value


# Claim batches under way at once (of the pool's connections; labels, requests
# and ACKs use the others).
CLAIM_LANES = 4


class PostgresStore(PostgresReads):
    """The queue's writes: requests, claims and leases, labels and ACKs."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        super().__init__(url, pool_size=pool_size)
        # A model's requests and ACKs come in streams: those arriving while one
        # is under way go together in the next round trip.
        self._submits = Coalescer(self._submit_many)
        self._acks = Coalescer(self._ack_many)
        # Claims need no order among themselves: several batches may be under way.
        self._claims = Coalescer(self._claim_batch, lanes=CLAIM_LANES)

    async def close(self) -> None:
        await self._submits.close()
        await self._acks.close()
        await self._claims.close()
        await super().close()

    # -- requests ----------------------------------------------------------

    async def submit(self, request: FeedbackRequest, *, max_pending: int,
                     now: float) -> Submitted:
        return await self._submits.call((request, max_pending, now))

    async def _submit_many(self, calls: list[tuple[FeedbackRequest, int, float]]
                           ) -> list[Submitted | BaseException]:
        """The requests handed in meanwhile, in one round trip and in order (coalesce.py)."""
        columns: list[list[Any]] = [[] for _ in range(14)]
        ahead: dict[str, int] = {}  # each requester's earlier requests in this batch
        for request, max_pending, _ in calls:
            sample_id, is_int = _sample_key(request.sample_id)
            # The requester's open requests are counted only when the estimate says
            # they may have reached the limit (see PendingEstimate), this batch included.
            earlier = ahead.get(request.requester, 0)
            ahead[request.requester] = earlier + 1
            limit = 0 if self._pending.room_for_one(request.requester,
                                                    max_pending - earlier) else max_pending
            for column, value in zip(columns, (
                    request.room, sample_id, is_int, request.requester, request.kind,
                    _dump(request.content), json.dumps(request.answer), request.question,
                    _dump(request.prediction), request.confidence, request.priority,
                    request.overlap, _dump(request.extra or None), limit), strict=True):
                column.append(value)
        async with self._connection(transaction=False) as conn:
            rows = await conn.fetch(
                "SELECT * FROM swergio_al_submit_many($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                "$10, $11, $12, $13, $14, $15)", *columns[:13], calls[0][2], columns[13])
        outcomes: list[Submitted | BaseException] = []
        for (request, max_pending, _), (outcome, pending) in zip(calls, rows, strict=True):
            if outcome == "limit_reached":
                self._pending.counted(request.requester, max_pending)
                outcomes.append(LimitReached(
                    f"{request.requester} already has {max_pending} pending requests"))
                continue
            if pending is not None:
                self._pending.counted(request.requester, pending)
            submitted = Submitted(outcome)
            if submitted in (Submitted.CREATED, Submitted.REOPENED):
                self._pending.added(request.requester)
            outcomes.append(submitted)
        return outcomes

    async def cancel(self, room: str, requester: str, sample_ids: Sequence[SampleId], *,
                     now: float, keep_leased: bool = False) -> list[Task]:
        keys = [_sample_key(s)[0] for s in sample_ids]
        async with self._connection() as conn:
            ids = [r["id"] for r in await conn.fetch(
                "SELECT id FROM requests WHERE room = $1 AND sample_id = ANY($2::text[]) AND "
                "requester = $3 AND status = $4 ORDER BY id FOR UPDATE",
                room, keys, requester, _OPEN)]
            if not ids:
                return []
            rows = await conn.fetch(
                f"SELECT {_TASK_COLUMNS}, t.request_id FROM tasks t JOIN requests r ON "
                "r.id = t.request_id WHERE t.request_id = ANY($1::int[]) AND t.status = $2 "
                "ORDER BY t.created FOR UPDATE OF t", ids, _LEASED)
            leased = [_task(_row(r)[:-1]) for r in rows]
            if keep_leased:  # someone is answering those: they stay as they are
                held = {r["request_id"] for r in rows}
                ids = [i for i in ids if i not in held]
                if not ids:
                    return leased
            await conn.execute("UPDATE tasks SET status = $1, updated = $2 WHERE "
                               "request_id = ANY($3::int[]) AND status = $4",
                               TaskStatus.CANCELED.value, now, ids, _LEASED)
            await conn.execute("UPDATE requests SET status = $1, in_flight = 0, updated = $2 "
                               "WHERE id = ANY($3::int[])", RequestStatus.CANCELED.value, now,
                               ids)
        return leased

    async def rescore(self, room: str, requester: str, priorities: Mapping[SampleId, float], *,
                      now: float) -> int:
        keys = [_sample_key(sample_id)[0] for sample_id in priorities]
        values = [float(priority) for priority in priorities.values()]
        async with self._connection() as conn:
            result = await conn.execute(
                "UPDATE requests r SET priority = p.priority, updated = $1 "
                "FROM unnest($2::text[], $3::float8[]) AS p(sample_id, priority) "
                "WHERE r.room = $4 AND r.sample_id = p.sample_id AND r.requester = $5 AND "
                "r.status = $6", now, keys, values, room, requester, _OPEN)
        return int(result.split()[-1])

    async def raise_overlap(self, room: str, requester: str, sample_id: SampleId, overlap: int,
                            *, now: float) -> bool:
        async with self._connection() as conn:
            result = await conn.execute(
                "UPDATE requests SET overlap = $1, status = CASE WHEN labeled < $1 THEN $2 "
                "ELSE status END, updated = $3 WHERE room = $4 AND sample_id = $5 AND "
                "requester = $6 AND status = ANY($7::text[]) AND overlap < $1",
                overlap, _OPEN, now, room, _sample_key(sample_id)[0], requester,
                [_OPEN, RequestStatus.DONE.value])
        return int(result.split()[-1]) > 0

    # -- tasks -------------------------------------------------------------

    async def claim(self, room: str, labeler: str, *, lease_seconds: float,
                    now: float) -> Task | None:
        tasks = await self.claim_many(room, [(labeler, 1)], lease_seconds=lease_seconds,
                                      now=now)
        return tasks[0] if tasks else None

    async def claim_many(self, room: str, wants: Sequence[tuple[str, int]], *,
                         lease_seconds: float, now: float) -> list[Task]:
        wants = [(labeler, count) for labeler, count in wants if count > 0]
        if not wants:
            return []
        return await self._claims.call((room, wants, lease_seconds, now))

    async def _claim_batch(self, calls: list[tuple[str, list[tuple[str, int]], float, float]]
                           ) -> list[list[Task] | BaseException]:
        """The claims handed in meanwhile, in one round trip, each in turn (coalesce.py)."""
        flat = [(call, room, labeler, count, lease, now)
                for call, (room, wants, lease, now) in enumerate(calls)
                for labeler, count in wants]
        async with self._connection(transaction=False) as conn:
            rows = await conn.fetch(
                "SELECT * FROM swergio_al_claim_batch($1::text[], $2::text[], $3::int[], "
                "$4::float8[], $5::float8[])", *([want[i] for want in flat] for i in range(1, 6)))
        tasks: list[list[Task]] = [[] for _ in calls]
        for row in rows:
            tasks[flat[row[0] - 1][0]].append(_task(_row(row)[1:]))
        return list(tasks)

    async def task(self, task_id: str) -> Task | None:
        async with self._connection(transaction=False) as conn:
            row = await conn.fetchrow(f"{_TASK_SELECT} WHERE t.task_id = $1", task_id)
        return None if row is None else _task(_row(row))

    async def leased_to(self, room: str, labeler: str, *, now: float) -> list[Task]:
        async with self._connection(transaction=False) as conn:
            rows = await conn.fetch(f"{_TASK_SELECT} WHERE t.room = $1 AND t.labeler = $2 AND "
                                    "t.status = $3 AND t.lease_expires > $4 ORDER BY t.created",
                                    room, labeler, _LEASED, now)
        return [_task(_row(row)) for row in rows]

    async def _end_leases(self, conn: Any, where: str, args: Sequence[Any],
                          status: TaskStatus, now: float) -> list[Task]:
        """End the leased tasks matching `where` in one statement; give their places back.

        An UPDATE locks and re-checks each row, so of two nodes ending the
        same lease (expiry here, a label there) only one succeeds.
        """
        n = len(args)
        ended = await conn.fetch(
            f"UPDATE tasks SET status = ${n + 1}, updated = ${n + 2} WHERE status = ${n + 3} "
            f"AND {where} RETURNING task_id", *args, status.value, now, _LEASED)
        if not ended:
            return []
        task_ids = [r["task_id"] for r in ended]
        await conn.execute(
            "UPDATE requests r SET in_flight = GREATEST(r.in_flight - e.n, 0) FROM "
            "(SELECT request_id, COUNT(*)::int AS n FROM tasks WHERE task_id = ANY($1::text[]) "
            "GROUP BY request_id) e WHERE r.id = e.request_id", task_ids)
        rows = await conn.fetch(f"{_TASK_SELECT} WHERE t.task_id = ANY($1::text[]) "
                                "ORDER BY t.created", task_ids)
        return [_task(_row(row)) for row in rows]

    async def _leased_task(self, conn: Any, task_id: str, labeler: str) -> Task:
        row = await conn.fetchrow(f"{_TASK_SELECT} WHERE t.task_id = $1 FOR UPDATE OF t",
                                  task_id)
        if row is None:
            raise UnknownTask(f"no task {task_id!r}")
        task = _task(_row(row))
        if task.labeler != labeler:
            raise NotYourTask(f"task {task_id!r} is leased to someone else")
        if task.status is not TaskStatus.LEASED:
            raise UnknownTask(f"task {task_id!r} is {task.status.value}, no longer leased")
        return task

    async def skip(self, task_id: str, labeler: str, *, now: float) -> Task:
        async with self._connection() as conn:
            await self._leased_task(conn, task_id, labeler)
            (task,) = await self._end_leases(conn, "task_id = $1", [task_id],
                                             TaskStatus.SKIPPED, now)
        return task

    async def release(self, room: str, labeler: str, *, now: float) -> list[Task]:
        async with self._connection() as conn:
            return await self._end_leases(conn, "room = $1 AND labeler = $2", [room, labeler],
                                          TaskStatus.RETURNED, now)

    async def expire(self, *, now: float) -> list[Task]:
        async with self._connection() as conn:
            return await self._end_leases(conn, "lease_expires <= $1", [now],
                                          TaskStatus.EXPIRED, now)

    # -- labels ------------------------------------------------------------

    async def record_label(self, task_id: str, labeler: str, answer: object,
                           seconds: float | None, *, label_id: str, now: float) -> Label:
        label, _ = await self.label_and_claim(task_id, labeler, answer, seconds,
                                              label_id=label_id, now=now, claim=0,
                                              lease_seconds=0.0)
        return label

    async def label_and_claim(self, task_id: str, labeler: str, answer: object,
                              seconds: float | None, *, label_id: str, now: float, claim: int,
                              lease_seconds: float) -> tuple[Label, list[Task]]:
        async with self._connection(transaction=False) as conn:
            # One round trip: commit the label, end the lease, claim what follows.
            try:
                rows = await conn.fetch(
                    "SELECT * FROM swergio_al_label($1, $2, $3, $4, $5, $6, $7, $8)",
                    task_id, labeler, json.dumps(answer), seconds, label_id, now, claim,
                    lease_seconds)
            except PostgresError as exc:
                if exc.sqlstate == UNKNOWN_TASK:
                    raise UnknownTask(exc.message) from None
                if exc.sqlstate == NOT_YOUR_TASK:
                    raise NotYourTask(exc.message) from None
                raise
        labeled, *claimed = [_task(_row(row)) for row in rows]
        request = labeled.request
        label = Label(label_id=label_id, task_id=task_id, room=request.room,
                      sample_id=request.sample_id, requester=request.requester, labeler=labeler,
                      answer=answer, seconds=seconds, created=now, extra=request.extra)
        return label, claimed

    async def ack(self, label_id: str, requester: str, *, now: float) -> bool:
        return await self._acks.call((label_id, requester, now))

    async def _ack_many(self, calls: list[tuple[str, str, float]]) -> list[bool | BaseException]:
        """The ACKs handed in meanwhile, in one round trip (coalesce.py)."""
        async with self._connection(transaction=False) as conn:
            rows = await conn.fetch("SELECT * FROM swergio_al_ack_many($1, $2, $3)",
                                    [label for label, _, _ in calls],
                                    [requester for _, requester, _ in calls], calls[0][2])
        matched = {(row[0], row[1]) for row in rows}
        return [(label, requester) in matched for label, requester, _ in calls]
