"""The embedded store: one SQLite file (sqlite_db.py), the default backend.

Here the writes to the queue: requests, leases and labels, the ones a model
pipelines (requests, ACKs) and a label with its labeler's next claim in group
commits. Labels, figures and KPI history are read in sqlite_reads.py; rows
become records in rows.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

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
from swergio_al.feedback.store.base import Store
from swergio_al.feedback.store.pending import PendingEstimate
from swergio_al.feedback.store.rows import _LABEL_COLUMNS, _TASK_SELECT, _dump, _sample_key, _task
from swergio_al.feedback.store.sqlite_reads import SQLiteReads
from swergio_al.protocol import new_id

# Tasks that keep a labeler from being offered the same request again.
_EXCLUDING = (TaskStatus.LEASED.value, TaskStatus.DONE.value, TaskStatus.SKIPPED.value)


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db`, `sqlite:///:memory:`."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"bad SQLite store url {url!r}: use sqlite:///path/to/file.db")
    return url[len(prefix):]


class SQLiteStore(SQLiteReads, Store):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._pending = PendingEstimate()  # touched on the store thread only

    # -- requests ----------------------------------------------------------

    async def submit(self, request: FeedbackRequest, *, max_pending: int,
                     now: float) -> Submitted:
        return await self._group(False, self._submit, request, max_pending, now)

    def _submit(self, tx: sqlite3.Connection, request: FeedbackRequest, max_pending: int,
                now: float) -> Submitted:
        sample_id, is_int = _sample_key(request.sample_id)
        fields = (request.requester, request.kind, _dump(request.content),
                  json.dumps(request.answer), request.question, _dump(request.prediction),
                  request.confidence, request.priority, request.overlap,
                  _dump(request.extra or None))
        row = tx.execute("SELECT id, status FROM requests WHERE room = ? AND sample_id = ?",
                         (request.room, sample_id)).fetchone()
        if row is not None and row[1] == RequestStatus.DONE:
            return Submitted.ALREADY_LABELED
        if row is not None and row[1] == RequestStatus.OPEN:
            tx.execute("UPDATE requests SET requester = ?, kind = ?, content = ?, answer = ?, "
                       "question = ?, prediction = ?, confidence = ?, priority = ?, "
                       "overlap = ?, extra = ?, updated = ? WHERE id = ?",
                       (*fields, now, row[0]))
            return Submitted.UPDATED
        if not self._pending.room_for_one(request.requester, max_pending):
            pending = tx.execute("SELECT COUNT(*) FROM requests WHERE requester = ? AND "
                                 "status = ?", (request.requester, RequestStatus.OPEN.value))
            self._pending.counted(request.requester, pending.fetchone()[0])
            if not self._pending.room_for_one(request.requester, max_pending):
                raise LimitReached(f"{request.requester} already has {max_pending} pending "
                                   "requests")
        self._pending.added(request.requester)
        if row is not None:  # canceled earlier: ask again, from scratch
            tx.execute("UPDATE requests SET requester = ?, kind = ?, content = ?, "
                       "answer = ?, question = ?, prediction = ?, confidence = ?, "
                       "priority = ?, overlap = ?, extra = ?, status = ?, updated = ? "
                       "WHERE id = ?",
                       (*fields, RequestStatus.OPEN.value, now, row[0]))
            return Submitted.REOPENED
        tx.execute("INSERT INTO requests (room, sample_id, sample_is_int, requester, kind, "
                   "content, answer, question, prediction, confidence, priority, overlap, "
                   "extra, status, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                   "?, ?, ?, ?, ?)", (request.room, sample_id, is_int, *fields,
                             RequestStatus.OPEN.value, now, now))
        return Submitted.CREATED

    async def cancel(self, room: str, requester: str, sample_ids: Sequence[SampleId], *,
                     now: float, keep_leased: bool = False) -> list[Task]:
        return await self._run(self._cancel, room, requester, list(sample_ids), now,
                               keep_leased)

    def _cancel(self, room: str, requester: str, sample_ids: list[SampleId],
                now: float, keep_leased: bool) -> list[Task]:
        keys = [_sample_key(s)[0] for s in sample_ids]
        leased: list[Task] = []
        with self._transaction() as tx:
            for key in keys:
                row = tx.execute("SELECT id FROM requests WHERE room = ? AND sample_id = ? AND "
                                 "requester = ? AND status = ?",
                                 (room, key, requester, RequestStatus.OPEN.value)).fetchone()
                if row is None:
                    continue
                held = [_task(r) for r in tx.execute(
                    f"{_TASK_SELECT} WHERE t.request_id = ? AND t.status = ?",
                    (row[0], TaskStatus.LEASED.value))]
                if keep_leased and held:  # someone is answering it: it stays as it is
                    leased += held
                    continue
                leased += held
                tx.execute("UPDATE tasks SET status = ?, updated = ? WHERE request_id = ? AND "
                           "status = ?", (TaskStatus.CANCELED.value, now, row[0],
                                          TaskStatus.LEASED.value))
                tx.execute("UPDATE requests SET status = ?, in_flight = 0, updated = ? "
                           "WHERE id = ?", (RequestStatus.CANCELED.value, now, row[0]))
        return leased

    async def rescore(self, room: str, requester: str, priorities: Mapping[SampleId, float], *,
                      now: float) -> int:
        return await self._run(self._rescore, room, requester, dict(priorities), now)

    def _rescore(self, room: str, requester: str, priorities: dict[SampleId, float],
                 now: float) -> int:
        changed = 0
        with self._transaction() as tx:
            for sample_id, priority in priorities.items():
                cursor = tx.execute(
                    "UPDATE requests SET priority = ?, updated = ? WHERE room = ? AND "
                    "sample_id = ? AND requester = ? AND status = ?",
                    (priority, now, room, _sample_key(sample_id)[0], requester,
                     RequestStatus.OPEN.value))
                changed += cursor.rowcount
        return changed

    async def raise_overlap(self, room: str, requester: str, sample_id: SampleId, overlap: int,
                            *, now: float) -> bool:
        return await self._run(self._raise_overlap, room, requester, sample_id, overlap, now)

    def _raise_overlap(self, room: str, requester: str, sample_id: SampleId, overlap: int,
                       now: float) -> bool:
        with self._transaction() as tx:
            cursor = tx.execute(
                "UPDATE requests SET overlap = ?, status = CASE WHEN labeled < ? THEN ? "
                "ELSE status END, updated = ? WHERE room = ? AND sample_id = ? AND "
                "requester = ? AND status IN (?, ?) AND overlap < ?",
                (overlap, overlap, RequestStatus.OPEN.value, now, room,
                 _sample_key(sample_id)[0], requester, RequestStatus.OPEN.value,
                 RequestStatus.DONE.value, overlap))
            return cursor.rowcount > 0

    # -- tasks -------------------------------------------------------------

    async def claim(self, room: str, labeler: str, *, lease_seconds: float,
                    now: float) -> Task | None:
        tasks = await self.claim_many(room, [(labeler, 1)], lease_seconds=lease_seconds,
                                      now=now)
        return tasks[0] if tasks else None

    async def claim_many(self, room: str, wants: Sequence[tuple[str, int]], *,
                         lease_seconds: float, now: float) -> list[Task]:
        return await self._group(False, self._claim_many, room, list(wants), lease_seconds, now)

    def _claim_many(self, tx: sqlite3.Connection, room: str, wants: list[tuple[str, int]],
                    lease_seconds: float, now: float) -> list[Task]:
        tasks: list[Task] = []
        for labeler, count in wants:
            for _ in range(count):
                task = self._claim_one(tx, room, labeler, lease_seconds, now)
                if task is None:
                    break
                tasks.append(task)
        return tasks

    def _claim_one(self, tx: sqlite3.Connection, room: str, labeler: str, lease_seconds: float,
                   now: float) -> Task | None:
        # The terms of the partial index of claimable requests, spelled as in it
        # (literal 'open'), so SQLite can use it: leased requests are not in it.
        row = tx.execute(
            "SELECT r.id FROM requests r INDEXED BY requests_claimable WHERE r.room = ? AND "
            "r.status = 'open' AND r.free_slots > 0 AND NOT EXISTS "
            "(SELECT 1 FROM tasks t WHERE t.request_id = r.id AND t.labeler = ? AND "
            "t.status IN (?, ?, ?)) ORDER BY r.priority DESC, r.id LIMIT 1",
            (room, labeler, *_EXCLUDING)).fetchone()
        if row is None:
            return None
        task_id = new_id()
        tx.execute("UPDATE requests SET in_flight = in_flight + 1 WHERE id = ?", (row[0],))
        tx.execute("INSERT INTO tasks (task_id, request_id, room, labeler, status, "
                   "lease_expires, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (task_id, row[0], room, labeler, TaskStatus.LEASED.value,
                    now + lease_seconds, now, now))
        return _task(tx.execute(f"{_TASK_SELECT} WHERE t.task_id = ?", (task_id,)).fetchone())

    async def task(self, task_id: str) -> Task | None:
        return await self._run(self._get_task, task_id)

    def _get_task(self, task_id: str) -> Task | None:
        row = self.db.execute(f"{_TASK_SELECT} WHERE t.task_id = ?", (task_id,)).fetchone()
        return None if row is None else _task(row)

    async def leased_to(self, room: str, labeler: str, *, now: float) -> list[Task]:
        return await self._run(self._leased_to, room, labeler, now)

    def _leased_to(self, room: str, labeler: str, now: float) -> list[Task]:
        rows = self.db.execute(f"{_TASK_SELECT} WHERE t.room = ? AND t.labeler = ? AND "
                               "t.status = ? AND t.lease_expires > ? ORDER BY t.created",
                               (room, labeler, TaskStatus.LEASED.value, now))
        return [_task(row) for row in rows]

    def _end_leases(self, tx: sqlite3.Connection, tasks: list[Task], status: TaskStatus,
                    now: float) -> None:
        for task in tasks:
            tx.execute("UPDATE tasks SET status = ?, updated = ? WHERE task_id = ?",
                       (status.value, now, task.task_id))
            tx.execute("UPDATE requests SET in_flight = in_flight - 1 WHERE id = (SELECT "
                       "request_id FROM tasks WHERE task_id = ?) AND in_flight > 0",
                       (task.task_id,))
            task.status = status

    def _leased_task(self, tx: sqlite3.Connection, task_id: str, labeler: str) -> Task:
        row = tx.execute(f"{_TASK_SELECT} WHERE t.task_id = ?", (task_id,)).fetchone()
        if row is None:
            raise UnknownTask(f"no task {task_id!r}")
        task = _task(row)
        if task.labeler != labeler:
            raise NotYourTask(f"task {task_id!r} is leased to someone else")
        if task.status is not TaskStatus.LEASED:
            raise UnknownTask(f"task {task_id!r} is {task.status.value}, no longer leased")
        return task

    async def skip(self, task_id: str, labeler: str, *, now: float) -> Task:
        return await self._run(self._skip, task_id, labeler, now)

    def _skip(self, task_id: str, labeler: str, now: float) -> Task:
        with self._transaction() as tx:
            task = self._leased_task(tx, task_id, labeler)
            self._end_leases(tx, [task], TaskStatus.SKIPPED, now)
            return task

    async def release(self, room: str, labeler: str, *, now: float) -> list[Task]:
        return await self._run(self._release, room, labeler, now)

    def _release(self, room: str, labeler: str, now: float) -> list[Task]:
        with self._transaction() as tx:
            tasks = [_task(row) for row in tx.execute(
                f"{_TASK_SELECT} WHERE t.room = ? AND t.labeler = ? AND t.status = ?",
                (room, labeler, TaskStatus.LEASED.value))]
            self._end_leases(tx, tasks, TaskStatus.RETURNED, now)
            return tasks

    async def expire(self, *, now: float) -> list[Task]:
        return await self._run(self._expire, now)

    def _expire(self, now: float) -> list[Task]:
        with self._transaction() as tx:
            tasks = [_task(row) for row in tx.execute(
                f"{_TASK_SELECT} WHERE t.status = ? AND t.lease_expires <= ?",
                (TaskStatus.LEASED.value, now))]
            self._end_leases(tx, tasks, TaskStatus.EXPIRED, now)
            return tasks

    # -- labels ------------------------------------------------------------

    async def record_label(self, task_id: str, labeler: str, answer: object,
                           seconds: float | None, *, label_id: str, now: float) -> Label:
        return await self._group(True, self._record_label, task_id, labeler, answer, seconds,
                                 label_id, now)

    async def label_and_claim(self, task_id: str, labeler: str, answer: object,
                              seconds: float | None, *, label_id: str, now: float, claim: int,
                              lease_seconds: float) -> tuple[Label, list[Task]]:
        return await self._group(True, self._label_and_claim, task_id, labeler, answer, seconds,
                                 label_id, now, claim, lease_seconds)

    def _label_and_claim(self, tx: sqlite3.Connection, task_id: str, labeler: str,
                         answer: object, seconds: float | None, label_id: str, now: float,
                         claim: int, lease_seconds: float) -> tuple[Label, list[Task]]:
        label = self._record_label(tx, task_id, labeler, answer, seconds, label_id, now)
        tasks: list[Task] = []
        for _ in range(claim):
            task = self._claim_one(tx, label.room, labeler, lease_seconds, now)
            if task is None:
                break
            tasks.append(task)
        return label, tasks

    def _record_label(self, tx: sqlite3.Connection, task_id: str, labeler: str, answer: object,
                      seconds: float | None, label_id: str, now: float) -> Label:
        task = self._leased_task(tx, task_id, labeler)
        request = task.request
        sample_id, is_int = _sample_key(request.sample_id)
        request_id = tx.execute("SELECT request_id FROM tasks WHERE task_id = ?",
                                (task_id,)).fetchone()[0]
        tx.execute("UPDATE tasks SET status = ?, updated = ? WHERE task_id = ?",
                   (TaskStatus.DONE.value, now, task_id))
        tx.execute("UPDATE requests SET labeled = labeled + 1, in_flight = in_flight - 1, "
                   "status = CASE WHEN labeled + 1 >= overlap THEN ? ELSE status END, "
                   "updated = ? WHERE id = ?",
                   (RequestStatus.DONE.value, now, request_id))
        tx.execute(f"INSERT INTO labels ({_LABEL_COLUMNS}, request_id) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                   (label_id, task_id, request.room, sample_id, is_int, request.requester,
                    labeler, json.dumps(answer), seconds, now, request_id))
        return Label(label_id=label_id, task_id=task_id, room=request.room,
                     sample_id=request.sample_id, requester=request.requester, labeler=labeler,
                     answer=answer, seconds=seconds, created=now, extra=request.extra)

    async def ack(self, label_id: str, requester: str, *, now: float) -> bool:
        return await self._group(False, self._ack, label_id, requester, now)

    def _ack(self, tx: sqlite3.Connection, label_id: str, requester: str, now: float) -> bool:
        row = tx.execute("SELECT acked FROM labels WHERE label_id = ? AND requester = ?",
                         (label_id, requester)).fetchone()
        if row is None:
            return False
        if not row[0]:
            tx.execute("UPDATE labels SET acked = 1, acked_at = ? WHERE label_id = ?",
                       (now, label_id))
        return True
