"""Rows of the feedback tables as records: the column lists the SQLite store
selects, and the converters and statements both stores share (the PostgreSQL
store has its own column lists, placeholders aside the same statements).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from swergio_al.feedback.records import (
    FeedbackRequest,
    Label,
    LabelerStats,
    SampleId,
    Task,
    TaskStatus,
)

_REQUEST_COLUMNS = ("r.id, r.room, r.sample_id, r.sample_is_int, r.requester, r.kind, r.content, "
                    "r.answer, r.question, r.prediction, r.confidence, r.priority, r.overlap, "
                    "r.extra")
_TASK_SELECT = (f"SELECT t.task_id, t.labeler, t.lease_expires, t.status, {_REQUEST_COLUMNS} "
                "FROM tasks t JOIN requests r ON r.id = t.request_id")
_LABEL_COLUMNS = ("label_id, task_id, room, sample_id, sample_is_int, requester, labeler, answer, "
                  "seconds, created, acked")


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
