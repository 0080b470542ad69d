"""Labels out of the store as CSV or JSON lines, in chunks (the CLI and /api share this)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

from swergio_al.feedback.store import Store, create_store
from swergio_al.feedback.store.sqlite import sqlite_path

FORMATS = ("csv", "jsonl")
COLUMNS = ("label_id", "room", "sample_id", "requester", "labeler", "answer", "seconds",
           "created", "acked")
CHUNK_ROWS = 500


def _csv_cell(value: Any) -> Any:
    # Strings stay as they are; numbers, lists and objects are written as JSON.
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


async def export_labels(store: Store, fmt: str, *, room: str | None = None) -> AsyncIterator[str]:
    """Yield the export text in chunks; `fmt` is one of FORMATS."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use {' or '.join(FORMATS)}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(COLUMNS)
    rows = 0
    async for label in store.labels(room=room):
        row = label.export_row()
        if fmt == "csv":
            writer.writerow([row["label_id"], row["room"], row["sample_id"], row["requester"],
                             row["labeler"], _csv_cell(row["answer"]), row["seconds"],
                             row["created"], int(row["acked"])])
        else:
            buffer.write(json.dumps(row, ensure_ascii=False) + "\n")
        rows += 1
        if rows % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


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
