"""Seed labels: what a model learns before anyone answers, read from a file."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


def load_seed_labels(path: str | Path) -> tuple[NDArray[Any], NDArray[Any]]:
    """Seed labels from JSONL (``{"x": [...], "y": ...}`` per line) or CSV (last column = y)."""
    path = Path(path)
    rows_x: list[list[float]] = []
    rows_y: list[Any] = []
    with path.open(newline="") as handle:
        if path.suffix == ".jsonl":
            for n, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    rows_x.append([float(v) for v in record["x"]])
                    rows_y.append(record["y"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{n}: expected {{\"x\": [...], \"y\": ...}}: "
                                     f"{exc}") from None
        else:
            for n, row in enumerate(csv.reader(handle), 1):
                if not row or (n == 1 and not _numeric(row[0])):
                    continue  # blank line or header
                try:
                    rows_x.append([float(v) for v in row[:-1]])
                except ValueError as exc:
                    raise ValueError(f"{path}:{n}: features must be numbers: {exc}") from None
                rows_y.append(_number_or_text(row[-1]))
    return np.asarray(rows_x, dtype=float), np.asarray(rows_y)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number_or_text(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() else value
