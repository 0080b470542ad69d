"""What the SQLite store is asked without a write to the queue: labels (a requester's,
pages of all), each room's figures, labeler statistics and the KPI history.

`SQLiteReads` is a base of `SQLiteStore`; its statements run on the store's
thread like every other.
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
from swergio_al.feedback.store.rows import (
    _LABEL_COLUMNS,
    KPI_THIN,
    RECENT_SECONDS,
    _label,
    labeler_table,
)
from swergio_al.feedback.store.sqlite_db import SQLiteDB


class SQLiteReads(SQLiteDB):
    """Labels, figures and KPI history from the SQLite file."""

    # -- labels ------------------------------------------------------------

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
