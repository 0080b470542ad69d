"""CSV, TSV and JSONL sources: one sample per row."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from swergio_al.sources.mediafiles import MEDIA_TYPES, printable, unreadable_reason
from swergio_al.sources.source import Item, Source, SourceError, column_listing
from swergio_al.terminal import count

Row = tuple[int, dict[str, Any]]  # (line number, fields)
# A text a person reads in one task; longer ones would not fit a task's frame either.
MAX_TEXT_CHARS = 100_000


def load_table(path: Path, *, delimiter: str | None, kind: str, text: str | None,
               media: str | None, features: Sequence[str] | None, id_column: str | None,
               exclude: Sequence[str]) -> Source:
    name = printable(path.name)
    columns, rows = _read_rows(path, delimiter)
    if not rows:
        raise SourceError(f"{name} has no rows")
    for column in (text, media, id_column, *(features or ())):
        if column is not None and column not in columns:
            raise SourceError(f"no column {printable(column)!r} in {name}: "
                              f"it has {column_listing(columns)}")
    ids = _sample_ids(rows, id_column, name)
    skipped: list[str] = []
    kept = list(range(len(rows)))
    if text is not None:
        kept = [i for i in kept if _has_text(rows[i], text, name, skipped)]
    media_files: dict[int, Path] = {}
    if media is not None:
        folder = path.resolve().parent
        for i in kept:
            found = _media_file(rows[i], media, folder, name, skipped)
            if found is not None:
                media_files[i] = found
        kept = [i for i in kept if i in media_files]
    if not kept:
        raise SourceError(f"{name}: no usable rows (every one was skipped: {skipped[0]})")
    kept_rows = [rows[i] for i in kept]
    numeric: dict[str, list[float]] = {}
    if features is None and kind == "table":
        used = {id_column, *exclude}
        for column in columns:
            if column not in used:
                values, bad = _numbers(kept_rows, column)
                if bad is None:
                    numeric[column] = values
        features = list(numeric)
        if not features:
            raise SourceError(f"{name} has no numeric column to use as features: name one "
                              "with --features, or the column to label with --text, "
                              "--image or --audio")
    for column in features or ():
        if column not in numeric:
            values, bad = _numbers(kept_rows, column)
            if bad is not None:
                line, value = bad[0], bad[1].get(column)
                raise SourceError(f"{name} line {line}: {printable(column)!r} is "
                                  f"{_short(value)}, not a finite number")
            numeric[column] = values
    matrix = (np.array([numeric[c] for c in features], dtype=np.float64).T.copy()
              if features else None)
    items = [Item(ids[i], rows[i][1]) for i in kept]
    source = Source(name=path.stem, kind=kind, items=items, skipped=skipped, media_root=None,
                    feature_columns=list(features or ()), columns=columns, text_column=text,
                    media_column=media, matrix=matrix)
    if media_files:
        # Serve the narrowest folder holding every file, not all of the table's folder.
        root = Path(os.path.commonpath([str(p.parent) for p in media_files.values()]))
        source.media_root = root
        source.media_relpaths = {ids[i]: p.relative_to(root).as_posix()
                                 for i, p in media_files.items()}
    return source


def _read_rows(path: Path, delimiter: str | None) -> tuple[list[str], list[Row]]:
    name = printable(path.name)
    try:
        # utf-8-sig: a byte-order mark (spreadsheets write one) is not part of the first name.
        with path.open(encoding="utf-8-sig", newline="") as stream:
            if delimiter is None:
                return _json_lines(stream, name)
            return _delimited(stream, delimiter, name)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{name} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SourceError(f"cannot read {name}: {exc.strerror or exc}") from None


def _delimited(stream: Any, delimiter: str, name: str) -> tuple[list[str], list[Row]]:
    reader = csv.reader(stream, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise SourceError(f"{name} is empty")
        seen: set[str] = set()
        for column in header:
            if column in seen:
                raise SourceError(f"{name}: column {printable(column)!r} appears twice "
                                  "in the header")
            seen.add(column)
        rows: list[Row] = []
        for record in reader:
            if not record:  # a blank line
                continue
            if len(record) != len(header):
                raise SourceError(f"{name} line {reader.line_num}: {count(len(record), 'field')}, "
                                  f"the header has {len(header)}")
            rows.append((reader.line_num, dict(zip(header, record, strict=True))))
    except csv.Error as exc:
        raise SourceError(f"{name} line {reader.line_num}: {exc}") from None
    return header, rows


def _json_lines(stream: Any, name: str) -> tuple[list[str], list[Row]]:
    columns: dict[str, None] = {}  # insertion-ordered set
    rows: list[Row] = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise SourceError(f"{name} line {number}: not JSON ({reason})") from None
        if not isinstance(record, dict):
            raise SourceError(f"{name} line {number}: a row must be a JSON object, "
                              f"got {type(record).__name__}")
        columns.update(dict.fromkeys(record))
        rows.append((number, record))
    if not rows:
        raise SourceError(f"{name} is empty")
    return list(columns), rows


def _sample_ids(rows: list[Row], id_column: str | None, name: str) -> list[str | int]:
    if id_column is None:
        return list(range(len(rows)))
    ids: list[str | int] = []
    first_line: dict[str, int] = {}
    for line, fields in rows:
        value = fields.get(id_column)
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise SourceError(f"{name} line {line}: the id in {printable(id_column)!r} must be "
                              f"a non-empty string or an integer, got {_short(value)}")
        key = str(value)
        if key in first_line:
            raise SourceError(f"{name}: duplicate id {_short(value)} in {printable(id_column)!r} "
                              f"(lines {first_line[key]} and {line})")
        first_line[key] = line
        ids.append(value)
    return ids


def _has_text(row: Row, column: str, name: str, skipped: list[str]) -> bool:
    line, fields = row
    value = fields.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        skipped.append(f"skipped {name} line {line}: no text in {printable(column)!r}")
        return False
    if len(str(value)) > MAX_TEXT_CHARS:
        skipped.append(f"skipped {name} line {line}: its text is over {MAX_TEXT_CHARS} "
                       "characters")
        return False
    return True


def _media_file(row: Row, column: str, folder: Path, name: str,
                skipped: list[str]) -> Path | None:
    """The file a row's media cell names, resolved inside the table's folder, else None
    with the reason in `skipped`."""
    line, fields = row
    value = fields.get(column)
    where = f"skipped {name} line {line}"
    if not isinstance(value, str) or not value.strip():
        skipped.append(f"{where}: no file name in {printable(column)!r}")
        return None
    # A table written on Windows separates folders with backslashes.
    cell = value.strip().replace("\\", "/")
    shown = printable(cell)[:120]
    if "\x00" in cell:
        skipped.append(f"{where}: {shown} is not a file name")
        return None
    if Path(cell).suffix.lower() not in MEDIA_TYPES:
        skipped.append(f"{where}: {shown} is not an image or audio file "
                       f"({', '.join(MEDIA_TYPES)})")
        return None
    try:
        resolved = (folder / cell).resolve(strict=True)
    except FileNotFoundError:
        skipped.append(f"{where}: {shown} not found")
        return None
    except (OSError, RuntimeError) as exc:  # too long, a link loop, no permission
        skipped.append(f"{where}: cannot read {shown} ({getattr(exc, 'strerror', None) or exc})")
        return None
    if not resolved.is_relative_to(folder):
        skipped.append(f"{where}: {shown} is outside the folder of {name}")
        return None
    if not resolved.is_file():
        skipped.append(f"{where}: {shown} is not a file")
        return None
    reason = unreadable_reason(resolved)
    if reason is not None:
        skipped.append(f"{where}: {shown}: {reason}")
        return None
    return resolved


def _number(value: Any) -> float | None:
    """A finite float from a number or numeric text; None for anything else (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _numbers(rows: list[Row], column: str) -> tuple[list[float], Row | None]:
    """The column as finite floats, or the first row where it is not one."""
    values: list[float] = []
    for row in rows:
        number = _number(row[1].get(column))
        if number is None:
            return values, row
        values.append(number)
    return values, None


def _short(value: Any) -> str:
    return printable(repr(value))[:60]


