"""What the server keeps of a model's LOG/KPI reports (its learning curve).

A report is the DATA of a LOG/KPI message a model sends to a feedback room.
Only plain values are kept (numbers, booleans, null, short strings) and only so
many of them: the history is for curves and tables, not a store for payloads.
"""

from __future__ import annotations

import math
from typing import Any

MAX_FIELDS = 40
MAX_TEXT = 200


def kpi_record(data: Any) -> dict[str, Any] | None:
    """The part of a LOG/KPI DATA worth keeping, or None when nothing is."""
    if not isinstance(data, dict):
        return None
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if len(kept) >= MAX_FIELDS:
            break
        if not isinstance(key, str) or len(key) > MAX_TEXT:
            continue
        if value is None or isinstance(value, bool):
            kept[key] = value
        elif isinstance(value, int | float):
            if math.isfinite(value):
                kept[key] = value
        elif isinstance(value, str) and len(value) <= MAX_TEXT:
            kept[key] = value
    return kept or None
