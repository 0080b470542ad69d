"""Labels out of the store as CSV or JSON lines, in chunks (the CLI and /api share this).

Each row is one raw answer with its labeler; `counted` says whether it counts
towards its sample's aggregate (not once its labeler was flagged), and
`aggregate`/`aggregate_confidence` are the sample's aggregate answer and its
confidence (see swergio_al/feedback/quality.py).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

from swergio_al.feedback.consensus import Consensus
from swergio_al.feedback.records import Label
from swergio_al.feedback.room_quality import is_gold_room, room_consensus
from swergio_al.feedback.store import Store, create_store
from swergio_al.feedback.store.sqlite import sqlite_path

FORMATS = ("csv", "jsonl")
COLUMNS = ("label_id", "room", "sample_id", "requester", "labeler", "answer", "seconds",
           "created", "acked", "counted", "aggregate", "aggregate_confidence")
CHUNK_ROWS = 500


# Spreadsheets run a cell starting with one of these as a formula (CSV injection);
# OWASP's advice is a leading ' which makes them show it as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# Characters JSON may hold as they are but str.splitlines() (and other line
# readers) break at: written as escapes, so a JSON lines record is one line to all.
_LINE_BREAKERS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028",
                                "\u2029": "\\u2029"})


def jsonl_record(row: Any) -> str:
    """`row` as one JSON lines record (ending in its newline), the values unchanged."""
    return json.dumps(row, ensure_ascii=False).translate(_LINE_BREAKERS) + "\n"


def csv_text(value: str) -> str:
    """A text cell as exported: a ' in front of one that a spreadsheet would take for a
    formula, and of one already starting with ', so a reader recovers every value by
    dropping one leading ' (see docs/security.md)."""
    return "'" + value if value.startswith(FORMULA_STARTS) or value.startswith("'") else value


def csv_cell(value: Any) -> Any:
    # Text is protected as above; numbers stay as they are; booleans, lists and objects
    # are written as JSON.
    if isinstance(value, str):
        return csv_text(value)
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    return json.dumps(value, ensure_ascii=False)


async def export_labels(store: Store, fmt: str, *, room: str | None = None) -> AsyncIterator[str]:
    """Yield the export text in chunks; `fmt` is one of FORMATS."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use {' or '.join(FORMATS)}")
    buffer = io.StringIO()
    # RFC 4180: CRLF between records, and every field holding \r, \n, a comma or a quote
    # is quoted (with a bare \n terminator the csv module leaves a lone \r unquoted).
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    if fmt == "csv":
        writer.writerow(COLUMNS)
    rows = 0
    rooms = [room] if room is not None else \
        [name for name in await store.rooms() if not is_gold_room(name)]
    quality = {name: _Quality(await room_consensus(store, name)) for name in rooms}
    async for label in store.labels(room=room):
        row = {**label.export_row(), **quality[label.room].columns(label)} \
            if label.room in quality else {**label.export_row(), "counted": None,
                                           "aggregate": None, "aggregate_confidence": None}
        if fmt == "csv":
            # Every cell through csv_cell (text protected), the two flags as 0/1.
            writer.writerow([_flag(row[column]) if column in ("acked", "counted")
                             else csv_cell(row[column]) for column in COLUMNS])
        else:
            buffer.write(jsonl_record(row))
        rows += 1
        if rows % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


class _Quality:
    """One room's aggregates, looked up per exported label."""

    def __init__(self, consensus: Consensus) -> None:
        self.counted = {a.label_id: a.counted for a in consensus.answers}
        result = consensus.aggregate()
        self.aggregates = {s: (v, round(float(c), 4)) for s, v, c in
                           zip(result.samples, result.values, result.confidence, strict=True)}

    def columns(self, label: Label) -> dict[str, Any]:
        value, confidence = self.aggregates.get(label.sample_id, (None, None))
        return {"counted": self.counted.get(label.label_id), "aggregate": value,
                "aggregate_confidence": confidence}


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def require_store(store_url: str) -> None:
    """Refuse to export from a SQLite file that is not there (opening would create it)."""
    if store_url.startswith("sqlite:") and not Path(sqlite_path(store_url)).exists():
        raise FileNotFoundError(f"no store at {sqlite_path(store_url)}")


async def write_export(store_url: str, fmt: str, out: TextIO, *, room: str | None = None) -> None:
    """`swergio-al export`: open the store, stream its labels to `out`, close it."""
    store = create_store(store_url)
    await store.open()
    try:
        async for chunk in export_labels(store, fmt, room=room):
            out.write(chunk)
    finally:
        await store.close()
