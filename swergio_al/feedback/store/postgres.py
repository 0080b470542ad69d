"""The shared store: PostgreSQL through an asyncpg pool, for several server processes.

Same schema and semantics as the SQLite store. What several nodes need on top:
- `claim` picks its request with `FOR UPDATE SKIP LOCKED`, so two nodes
  claiming at once never lease the same request: one takes the next row.
- Every read that leads to a change locks the rows it reads (`FOR UPDATE`),
  and lease expiry is a single `UPDATE ... RETURNING`, so a label racing an
  expiry on another node either commits or finds the task expired, never both.
- Migrations run under a transaction-scoped advisory lock: nodes starting
  together apply each step once.
Commits use the server's `synchronous_commit` (on by default): a label is on
disk before the ACK goes out.

`?schema=name` in the URL keeps the tables in their own schema (created if
missing); tests use one per run.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from swergio_al.config import redact_url
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
    StoreUnavailable,
    Submitted,
    Task,
    TaskStatus,
    UnknownTask,
)
from swergio_al.feedback.store.base import KPI_KEEP, MEDIAN_WINDOW, Store
from swergio_al.feedback.store.pending import PendingEstimate
from swergio_al.feedback.store.pg_functions import (
    FUNCTIONS,
    LIMIT_REACHED,
    NOT_YOUR_TASK,
    UNKNOWN_TASK,
)
from swergio_al.feedback.store.rows import (
    KPI_THIN,
    RECENT_SECONDS,
    _dump,
    _label,
    _sample_key,
    _task,
    labeler_table,
)
from swergio_al.feedback.store.schema import LATEST, MIGRATIONS

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the PostgreSQL store needs the asyncpg package: "
                      "pip install 'swergio-al[postgres]'") from exc

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# What a lost or confused database connection raises (asyncpg's internal state
# error included: seen on a connection the server terminated while it was idle).
_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
             OSError, TimeoutError)

_REQUEST_COLUMNS = ("r.id, r.room, r.sample_id, r.sample_is_int, r.requester, r.kind, r.content, "
                    "r.answer, r.question, r.prediction, r.confidence, r.priority, r.overlap, "
                    "r.extra")
_TASK_COLUMNS = f"t.task_id, t.labeler, t.lease_expires, t.status, {_REQUEST_COLUMNS}"
_TASK_SELECT = f"SELECT {_TASK_COLUMNS} FROM tasks t JOIN requests r ON r.id = t.request_id"
_LABEL_COLUMNS = ("label_id, task_id, room, sample_id, sample_is_int, requester, labeler, answer, "
                  "seconds, created, acked")
_EXCLUDING = [TaskStatus.LEASED.value, TaskStatus.DONE.value, TaskStatus.SKIPPED.value]
_OPEN = RequestStatus.OPEN.value
_LEASED = TaskStatus.LEASED.value


def split_url(url: str) -> tuple[str, str | None]:
    """`postgresql://...?schema=name` → (DSN for asyncpg, schema or None)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for key, value in reversed(query) if key == "schema"), None)
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"schema {schema!r} in the store url must be a plain SQL identifier "
                         "(letters, digits, underscores)")
    rest = [(key, value) for key, value in query if key != "schema"]
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def _row(record: Any) -> tuple[Any, ...]:
    return tuple(record)


class PostgresStore(Store):
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.pool_size = pool_size
        self._dsn, self.schema = split_url(url)
        self._pool: asyncpg.Pool | None = None
        self._pending = PendingEstimate()

    # -- plumbing ----------------------------------------------------------

    @asynccontextmanager
    async def _connection(self, *, transaction: bool = True) -> AsyncIterator[Any]:
        """A pooled connection (in a transaction); backend failures become StoreUnavailable."""
        if self._pool is None:
            raise StoreUnavailable("the feedback store is not open")
        try:
            async with self._pool.acquire() as conn:
                try:
                    if transaction:
                        async with conn.transaction():
                            yield conn
                    else:
                        yield conn
                except _FAILURES:
                    conn.terminate()  # in doubt: the pool opens a fresh one for the next call
                    raise
        except _FAILURES as exc:
            raise StoreUnavailable(f"feedback store failed: {exc}") from exc

    async def open(self) -> None:
        if self._pool is not None:
            return
        settings = {"search_path": f'"{self.schema}"'} if self.schema else {}
        try:
            pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self.pool_size,
                                             server_settings=settings)
        except _FAILURES as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL at {redact_url(self._dsn)}: "
                                   f"{exc}") from exc
        self._pool = pool
        try:
            await self._migrate()
        except BaseException:
            self._pool = None
            await pool.close()
            raise

    async def _migrate(self) -> None:
        async with self._connection() as conn:
            # One node at a time; the others find the work done.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                               f"swergio_al:{self.schema or ''}")
            if self.schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                               "(version INTEGER NOT NULL)")
            current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            if current > LATEST:
                raise RuntimeError(f"the store has schema version {current}, newer than this "
                                   f"release understands ({LATEST}); upgrade swergio-al")
            for version in range(current + 1, LATEST + 1):
                for statement in MIGRATIONS[version - 1]:
                    await conn.execute(statement.format(serial="SERIAL PRIMARY KEY",
                                                            generated="STORED"))
                await conn.execute("DELETE FROM schema_version")
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            for function in FUNCTIONS:
                await conn.execute(function)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def schema_version(self) -> int:
        async with self._connection(transaction=False) as conn:
            return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) "
                                           "FROM schema_version"))

    # -- requests ----------------------------------------------------------

    async def submit(self, request: FeedbackRequest, *, max_pending: int,
                     now: float) -> Submitted:
        sample_id, is_int = _sample_key(request.sample_id)
        fields = (request.requester, request.kind, _dump(request.content),
                  json.dumps(request.answer), request.question, _dump(request.prediction),
                  request.confidence, request.priority, request.overlap,
                  _dump(request.extra or None))
        # The requester's open requests are counted only when the estimate says
        # they may have reached the limit (see PendingEstimate).
        limit = 0 if self._pending.room_for_one(request.requester, max_pending) else max_pending
        async with self._connection(transaction=False) as conn:
            try:  # one round trip: the function decides and writes
                outcome, pending = await conn.fetchrow(
                    "SELECT * FROM swergio_al_submit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                    "$11, $12, $13, $14, $15)", request.room, sample_id, is_int, *fields, now,
                    limit)
            except asyncpg.PostgresError as exc:
                if exc.sqlstate == LIMIT_REACHED:
                    self._pending.counted(request.requester, max_pending)
                    raise LimitReached(exc.message) from None
                raise
        if pending is not None:
            self._pending.counted(request.requester, pending)
        submitted = Submitted(outcome)
        if submitted in (Submitted.CREATED, Submitted.REOPENED):
            self._pending.added(request.requester)
        return submitted

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
        async with self._connection(transaction=False) as conn:
            # One round trip: the function claims for each labeler in turn.
            rows = await conn.fetch(
                "SELECT * FROM swergio_al_claim_many($1, $2::text[], $3::int[], $4, $5)",
                room, [labeler for labeler, _ in wants], [count for _, count in wants],
                lease_seconds, now)
        return [_task(_row(row)) for row in rows]

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
            except asyncpg.PostgresError as exc:
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
        async with self._connection(transaction=False) as conn:
            return bool(await conn.fetchval("SELECT swergio_al_ack($1, $2, $3)", label_id,
                                            requester, now))

    async def label_of_task(self, task_id: str) -> Label | None:
        labels = await self._select_labels("l.task_id = $1", task_id)
        return labels[0] if labels else None

    async def unacked(self, requester: str) -> list[Label]:
        return await self._select_labels("l.requester = $1 AND l.acked = 0", requester)

    async def history(self, room: str, requester: str) -> list[Label]:
        return await self._select_labels("l.room = $1 AND l.requester = $2", room, requester)

    async def _select_labels(self, where: str, *args: Any) -> list[Label]:
        """Labels as the requester gets them: with their request's extra keys."""
        columns = ", ".join(f"l.{column.strip()}" for column in _LABEL_COLUMNS.split(","))
        async with self._connection(transaction=False) as conn:
            rows = await conn.fetch(f"SELECT {columns}, r.extra FROM labels l JOIN requests r "
                                    f"ON r.id = l.request_id WHERE {where} ORDER BY l.seq",
                                    *args)
        return [_label(_row(row)[:-1], row[-1]) for row in rows]

    async def labels(self, *, room: str | None = None,
                     batch: int = 1000) -> AsyncIterator[Label]:
        after = 0
        while True:
            async with self._connection(transaction=False) as conn:
                if room is None:
                    rows = await conn.fetch(f"SELECT seq, {_LABEL_COLUMNS} FROM labels "
                                            "WHERE seq > $1 ORDER BY seq LIMIT $2", after, batch)
                else:
                    rows = await conn.fetch(f"SELECT seq, {_LABEL_COLUMNS} FROM labels "
                                            "WHERE seq > $1 AND room = $2 ORDER BY seq LIMIT $3",
                                            after, room, batch)
            for row in rows:
                yield _label(_row(row)[1:])
            if len(rows) < batch:
                return
            after = rows[-1]["seq"]

    # -- numbers -----------------------------------------------------------

    async def stats(self, room: str, *, now: float) -> RoomStats:
        async with self._connection(transaction=False) as conn:
            row = await conn.fetchrow(
                "SELECT COALESCE(SUM(CASE WHEN labeled + in_flight < overlap THEN 1 ELSE 0 END),"
                " 0) AS queued, COALESCE(SUM(in_flight), 0) AS in_flight FROM requests "
                "WHERE room = $1 AND status = $2", room, _OPEN)
            labeled, recent = await conn.fetchrow(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE created >= $2) FROM labels "
                "WHERE room = $1", room, now - 60.0)
        return RoomStats(queued=int(row["queued"]), in_flight=int(row["in_flight"]),
                         labeled=int(labeled), labels_per_minute=int(recent))

    async def rooms(self) -> list[str]:
        async with self._connection(transaction=False) as conn:
            rows = await conn.fetch("SELECT DISTINCT room FROM requests ORDER BY room")
        return [row["room"] for row in rows]

    async def open_question(self, room: str) -> str | None:
        async with self._connection(transaction=False) as conn:
            question = await conn.fetchval("SELECT question FROM requests WHERE room = $1 AND "
                                           "status = $2 ORDER BY priority DESC, id LIMIT 1",
                                           room, _OPEN)
        return None if question is None else str(question)

    async def labeler_stats(self, room: str) -> list[LabelerStats]:
        async with self._connection(transaction=False) as conn:
            counts = await conn.fetch("SELECT labeler, COUNT(*) FROM labels WHERE room = $1 "
                                      "GROUP BY labeler", room)
            seconds = await conn.fetch(RECENT_SECONDS.format("$1", "$2"), room, MEDIAN_WINDOW)
            skips = await conn.fetch("SELECT labeler, COUNT(*) FROM tasks WHERE room = $1 "
                                     "AND status = $2 GROUP BY labeler", room,
                                     TaskStatus.SKIPPED.value)
        return labeler_table(map(_row, counts), map(_row, seconds), map(_row, skips))

    # -- KPI history -------------------------------------------------------

    async def record_kpi(self, room: str, model: str, data: Mapping[str, object], *,
                         now: float, keep: int = KPI_KEEP) -> None:
        text = json.dumps(data, separators=(",", ":"))
        async with self._connection() as conn:
            # Per (room, model) one writer at a time, so two nodes never thin twice.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                               f"swergio_al:kpi:{room}:{model}")
            await conn.execute("INSERT INTO kpi (room, model, created, data) "
                               "VALUES ($1, $2, $3, $4)", room, model, now, text)
            count = await conn.fetchval("SELECT COUNT(*) FROM kpi WHERE room = $1 "
                                        "AND model = $2", room, model)
            if count > keep:
                await conn.execute(KPI_THIN.format("$1", "$2"), room, model)

    async def kpi_history(self, *, room: str | None = None,
                          model: str | None = None) -> list[KpiPoint]:
        filters = [(column, value) for column, value in (("room", room), ("model", model))
                   if value is not None]
        where = " AND ".join(f"{column} = ${i}" for i, (column, _) in enumerate(filters, 1))
        async with self._connection(transaction=False) as conn:
            rows = await conn.fetch("SELECT room, model, created, data FROM kpi "
                                    f"{'WHERE ' + where if where else ''} ORDER BY seq",
                                    *(value for _, value in filters))
        return [KpiPoint(room=row["room"], model=row["model"], created=row["created"],
                         data=json.loads(row["data"])) for row in rows]
