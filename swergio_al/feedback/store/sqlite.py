"""The embedded store: one SQLite file in WAL mode, driven by one dedicated thread.

Every statement runs on that thread, so writes are ordered, the event loop
never blocks on disk, and `claim` is atomic without any locking of our own.
Commits holding a label are fsync'd (synchronous=FULL); the rest can be replayed
by their senders and commit with synchronous=NORMAL, which survives a process
crash (but not a power cut).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from swergio_al.feedback.records import (
    FeedbackRequest,
    KpiPoint,
    Label,
    LabelerStats,
    LimitReached,
    NotYourTask,
    RequestStatus,
    RoomStats,
    SampleId,
    StoreError,
    StoreUnavailable,
    Submitted,
    Task,
    TaskStatus,
    UnknownTask,
)
from swergio_al.feedback.store.base import KPI_KEEP, MEDIAN_WINDOW, Store
from swergio_al.feedback.store.pending import PendingEstimate
from swergio_al.feedback.store.schema import LATEST, MIGRATIONS
from swergio_al.feedback.store.worker import StoreThread
from swergio_al.protocol import new_id

T = TypeVar("T")

_REQUEST_COLUMNS = ("r.id, r.room, r.sample_id, r.sample_is_int, r.requester, r.kind, r.content, "
                    "r.answer, r.question, r.prediction, r.confidence, r.priority, r.overlap, "
                    "r.extra")
_TASK_SELECT = (f"SELECT t.task_id, t.labeler, t.lease_expires, t.status, {_REQUEST_COLUMNS} "
                "FROM tasks t JOIN requests r ON r.id = t.request_id")
_LABEL_COLUMNS = ("label_id, task_id, room, sample_id, sample_is_int, requester, labeler, answer, "
                  "seconds, created, acked")
# Tasks that keep a labeler from being offered the same request again.
_EXCLUDING = (TaskStatus.LEASED.value, TaskStatus.DONE.value, TaskStatus.SKIPPED.value)


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _sample_key(sample_id: SampleId) -> tuple[str, int]:
    return str(sample_id), int(isinstance(sample_id, int))


def _sample(text: str, is_int: int) -> SampleId:
    return int(text) if is_int else text


def _request(row: Sequence[Any]) -> FeedbackRequest:
    (_, room, sample_id, is_int, requester, kind, content, answer, question, prediction,
     confidence, priority, overlap) = row[:13]
    # The PostgreSQL store shares these helpers; a row without `extra` has none.
    extra = row[13] if len(row) > 13 else None
    return FeedbackRequest(room=room, sample_id=_sample(sample_id, is_int), requester=requester,
                           kind=kind, content=_load(content), answer=json.loads(answer),
                           question=question, prediction=_load(prediction),
                           confidence=confidence, priority=priority, overlap=overlap,
                           extra=_load(extra) or {})


def _task(row: Sequence[Any]) -> Task:
    task_id, labeler, lease_expires, status = row[:4]
    return Task(task_id=task_id, request=_request(row[4:]), labeler=labeler,
                lease_expires=lease_expires, status=TaskStatus(status))


def _label(row: Sequence[Any], extra: str | None = None) -> Label:
    (label_id, task_id, room, sample_id, is_int, requester, labeler, answer, seconds, created,
     acked) = row
    return Label(label_id=label_id, task_id=task_id, room=room,
                 sample_id=_sample(sample_id, is_int), requester=requester, labeler=labeler,
                 answer=json.loads(answer), seconds=seconds, created=created, acked=bool(acked),
                 extra=_load(extra) or {})


def labeler_table(counts: Iterable[tuple[str, int]], seconds: Iterable[tuple[str, float]],
                  skips: Iterable[tuple[str, int]]) -> list[LabelerStats]:
    """Per-labeler rows from three queries' results, busiest labeler first."""
    recent: dict[str, list[float]] = {}
    for labeler, value in seconds:
        recent.setdefault(labeler, []).append(float(value))
    skipped, given = dict(skips), dict(counts)
    names = set(given) | set(skipped)
    rows = [LabelerStats(labeler=name, labels=int(given.get(name, 0)),
                         median_seconds=statistics.median(recent[name]) if name in recent else None,
                         skips=int(skipped.get(name, 0))) for name in names]
    return sorted(rows, key=lambda row: (-row.labels, row.labeler))


# Shared by both stores (placeholders aside): thin a model's KPI history by
# dropping every second point, keeping the first one.
KPI_THIN = ("DELETE FROM kpi WHERE seq IN (SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER "
            "(ORDER BY seq) AS n FROM kpi WHERE room = {0} AND model = {1}) AS ranked "
            "WHERE n % 2 = 0)")
RECENT_SECONDS = ("SELECT labeler, seconds FROM (SELECT labeler, seconds, ROW_NUMBER() OVER "
                  "(PARTITION BY labeler ORDER BY seq DESC) AS n FROM labels WHERE room = {0} "
                  "AND seconds IS NOT NULL) AS recent WHERE n <= {1}")


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db`, `sqlite:///:memory:`."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"bad SQLite store url {url!r}: use sqlite:///path/to/file.db")
    return url[len(prefix):]


class SQLiteStore(Store):
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._thread: StoreThread | None = None
        self._batch_lock = threading.Lock()
        # Writes waiting for the next group commit, each saying if it must be fsync'd.
        self._waiting: list[tuple[bool, Callable[..., Any], tuple[Any, ...],
                                  asyncio.Future[Any]]] = []
        self._queued = False
        self._synchronous = "NORMAL"  # the connection's setting now (store thread only)
        self._pending = PendingEstimate()  # touched on the store thread only

    # -- plumbing ----------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._thread is None:
            raise StoreUnavailable("the feedback store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        try:
            self._thread.post(partial(fn, *args), future, loop)
        except RuntimeError:  # closing: the thread takes no more work
            raise StoreUnavailable("the feedback store is closing") from None
        try:
            return await future
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"feedback store failed: {exc}") from exc

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("the feedback store is not open")
        return self._db

    @contextmanager
    def _transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        db = self.db
        synchronous = "FULL" if durable else "NORMAL"
        if synchronous != self._synchronous:
            db.execute(f"PRAGMA synchronous={synchronous}")
            self._synchronous = synchronous
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            self._db = db
            self._migrate()
        except BaseException:
            self._db = None
            db.close()
            raise

    def _migrate(self) -> None:
        db = self.db
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = self._version()
        if current > LATEST:
            raise RuntimeError(f"{self.path} has schema version {current}, newer than this "
                               f"release understands ({LATEST}); upgrade swergio-al")
        for version in range(current + 1, LATEST + 1):
            with self._transaction(durable=True) as tx:
                for statement in MIGRATIONS[version - 1]:
                    tx.execute(statement.format(serial="INTEGER PRIMARY KEY",
                                                generated="VIRTUAL"))
                tx.execute("DELETE FROM schema_version")
                tx.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _version(self) -> int:
        row = self.db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    async def open(self) -> None:
        if self._thread is not None:
            return
        self._thread = StoreThread("sqlite-store")
        try:
            await self._run(self._connect)
        except BaseException:
            thread, self._thread = self._thread, None
            await asyncio.get_running_loop().run_in_executor(None, thread.stop)
            raise

    async def close(self) -> None:
        if self._thread is None:
            return
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        thread, self._thread = self._thread, None
        await asyncio.get_running_loop().run_in_executor(None, thread.stop)

    async def schema_version(self) -> int:
        return await self._run(self._version)

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

    async def _group(self, durable: bool, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(tx, *args)` in the next group commit.

        Writes that arrive while a commit is under way wait for the next one and
        share it, so throughput grows with load instead of being capped at one
        transaction (or fsync) per write. A commit holding a label (`durable`) is
        fsync'd; one holding only writes their senders can replay (the model's
        requests and ACKs, claims) is not. Each write has its own savepoint: a
        refused one (StoreError) leaves the others to commit. Writes commit in
        the order they came, which the pipelined frames of a model rely on
        (relay/pipeline.py).
        """
        if self._thread is None:
            raise StoreUnavailable("the feedback store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._batch_lock:
            self._waiting.append((durable, fn, args, future))
            start = not self._queued
            self._queued = True
        if start:
            try:
                self._thread.post(partial(self._commit_group, loop), None, loop)
            except RuntimeError:  # closing: the store thread takes no more work
                with self._batch_lock:
                    stranded, self._waiting = self._waiting, []
                    self._queued = False
                closing = StoreUnavailable("the feedback store is closing")
                for _, _, _, waiter in stranded:
                    if waiter is not future and not waiter.done():
                        waiter.set_exception(closing)
                raise closing from None
        return await future

    def _commit_group(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._batch_lock:
            batch, self._waiting = self._waiting, []
            self._queued = False
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            with self._transaction(durable=any(durable for durable, *_ in batch)) as tx:
                for _, fn, args, future in batch:
                    tx.execute("SAVEPOINT write")
                    try:
                        outcomes.append((future, fn(tx, *args), None))
                    except StoreError as exc:  # this write only: the others still commit
                        tx.execute("ROLLBACK TO write")
                        outcomes.append((future, None, exc))
                    tx.execute("RELEASE write")
        except sqlite3.Error as exc:
            failed = StoreUnavailable(f"feedback store failed: {exc}")
            outcomes = [(future, None, failed) for *_, future in batch]
        except Exception as exc:  # rolled back; no waiter may be left hanging
            outcomes = [(future, None, exc) for *_, future in batch]
        loop.call_soon_threadsafe(_settle, outcomes)

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

    async def label_of_task(self, task_id: str) -> Label | None:
        labels = await self._run(self._select_labels, "l.task_id = ?", (task_id,))
        return labels[0] if labels else None

    async def unacked(self, requester: str) -> list[Label]:
        return await self._run(self._select_labels, "l.requester = ? AND l.acked = 0",
                               (requester,))

    async def history(self, room: str, requester: str) -> list[Label]:
        return await self._run(self._select_labels, "l.room = ? AND l.requester = ?",
                               (room, requester))

    def _select_labels(self, where: str, args: tuple[Any, ...]) -> list[Label]:
        """Labels as the requester gets them: with their request's extra keys."""
        columns = ", ".join(f"l.{c.strip()}" for c in _LABEL_COLUMNS.split(","))
        rows = self.db.execute(f"SELECT {columns}, r.extra FROM labels l JOIN requests r "
                               f"ON r.id = l.request_id WHERE {where} ORDER BY l.seq", args)
        return [_label(row[:-1], row[-1]) for row in rows]

    async def labels(self, *, room: str | None = None,
                     batch: int = 1000) -> AsyncIterator[Label]:
        after = 0
        while True:
            rows = await self._run(self._label_page, room, after, batch)
            for _, row in rows:
                yield _label(row)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    def _label_page(self, room: str | None, after: int,
                    batch: int) -> list[tuple[int, tuple[Any, ...]]]:
        where, args = ("seq > ?", (after,)) if room is None else \
            ("seq > ? AND room = ?", (after, room))
        rows = self.db.execute(f"SELECT seq, {_LABEL_COLUMNS} FROM labels WHERE {where} "
                               "ORDER BY seq LIMIT ?", (*args, batch))
        return [(row[0], tuple(row[1:])) for row in rows]

    # -- numbers -----------------------------------------------------------

    async def stats(self, room: str, *, now: float) -> RoomStats:
        return await self._run(self._stats, room, now)

    def _stats(self, room: str, now: float) -> RoomStats:
        db = self.db
        queued, in_flight = db.execute(
            "SELECT COALESCE(SUM(CASE WHEN labeled + in_flight < overlap THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(in_flight), 0) FROM requests WHERE room = ? AND status = ?",
            (room, RequestStatus.OPEN.value)).fetchone()
        labeled = db.execute("SELECT COUNT(*) FROM labels WHERE room = ?", (room,)).fetchone()[0]
        recent = db.execute("SELECT COUNT(*) FROM labels WHERE room = ? AND created >= ?",
                            (room, now - 60.0)).fetchone()[0]
        return RoomStats(queued=queued, in_flight=in_flight, labeled=labeled,
                         labels_per_minute=recent)

    async def rooms(self) -> list[str]:
        return await self._run(self._rooms)

    def _rooms(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT DISTINCT room FROM requests "
                                                  "ORDER BY room")]

    async def open_question(self, room: str) -> str | None:
        return await self._run(self._open_question, room)

    def _open_question(self, room: str) -> str | None:
        row = self.db.execute("SELECT question FROM requests WHERE room = ? AND status = ? "
                              "ORDER BY priority DESC, id LIMIT 1",
                              (room, RequestStatus.OPEN.value)).fetchone()
        return None if row is None else str(row[0])

    async def labeler_stats(self, room: str) -> list[LabelerStats]:
        return await self._run(self._labeler_stats, room)

    def _labeler_stats(self, room: str) -> list[LabelerStats]:
        db = self.db
        counts = db.execute("SELECT labeler, COUNT(*) FROM labels WHERE room = ? "
                            "GROUP BY labeler", (room,)).fetchall()
        seconds = db.execute(RECENT_SECONDS.format("?", "?"), (room, MEDIAN_WINDOW)).fetchall()
        skips = db.execute("SELECT labeler, COUNT(*) FROM tasks WHERE room = ? AND status = ? "
                           "GROUP BY labeler", (room, TaskStatus.SKIPPED.value)).fetchall()
        return labeler_table(counts, seconds, skips)

    # -- KPI history -------------------------------------------------------

    async def record_kpi(self, room: str, model: str, data: Mapping[str, object], *,
                         now: float, keep: int = KPI_KEEP) -> None:
        await self._run(self._record_kpi, room, model, json.dumps(data, separators=(",", ":")),
                        now, keep)

    def _record_kpi(self, room: str, model: str, data: str, now: float, keep: int) -> None:
        with self._transaction() as tx:
            tx.execute("INSERT INTO kpi (room, model, created, data) VALUES (?, ?, ?, ?)",
                       (room, model, now, data))
            count = tx.execute("SELECT COUNT(*) FROM kpi WHERE room = ? AND model = ?",
                               (room, model)).fetchone()[0]
            if count > keep:
                tx.execute(KPI_THIN.format("?", "?"), (room, model))

    async def kpi_history(self, *, room: str | None = None,
                          model: str | None = None) -> list[KpiPoint]:
        return await self._run(self._kpi_history, room, model)

    def _kpi_history(self, room: str | None, model: str | None) -> list[KpiPoint]:
        where = " AND ".join(f"{column} = ?" for column, value in
                             (("room", room), ("model", model)) if value is not None)
        args = tuple(value for value in (room, model) if value is not None)
        rows = self.db.execute("SELECT room, model, created, data FROM kpi "
                               f"{'WHERE ' + where if where else ''} ORDER BY seq", args)
        return [KpiPoint(room=r, model=m, created=c, data=json.loads(d)) for r, m, c, d in rows]
