"""What the PostgreSQL store is asked without a write to the queue: labels (a
requester's, pages of all), each room's figures, labeler statistics and the KPI
history. `PostgresReads` is a base of `PostgresStore`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from swergio_al.feedback.records import (
    KpiPoint,
    Label,
    LabelerStats,
    RequestStatus,
    RoomStats,
    TaskStatus,
)
from swergio_al.feedback.store.base import KPI_KEEP, MEDIAN_WINDOW
from swergio_al.feedback.store.postgres_db import PostgresDB, _row
from swergio_al.feedback.store.rows import (
    _LABEL_COLUMNS,
    KPI_THIN,
    RECENT_SECONDS,
    _label,
    labeler_table,
)

_OPEN = RequestStatus.OPEN.value


class PostgresReads(PostgresDB):
    """Labels, figures and KPI history from the shared database."""

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
