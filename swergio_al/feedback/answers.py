"""Answer schemas: what a request may ask for, and whether a label fits it.

`{"type": "choice", "choices": [...], "keys": [...]}` (keys optional: one keyboard key per
choice, a single character each, all different; the page picks 1-9, 0, then letters without
them), `{"type": "rating", "min": 0, "max": 5, "step": 1}`,
`{"type": "text", "max_length": 2000}`, `{"type": "number"}` (any finite number).
Both checks return an error message, or None.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from swergio_al.protocol import is_finite_number

SCHEMA_TYPES = ("choice", "rating", "text", "number")
DEFAULT_TEXT_LENGTH = 2000


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a usable answer schema."""
    if not isinstance(schema, dict):
        return "answer must be an object like {\"type\": \"choice\", \"choices\": [...]}"
    kind = schema.get("type")
    if kind == "choice":
        choices = schema.get("choices")
        if not isinstance(choices, list) or not choices:
            return "a choice answer needs a non-empty list of choices"
        return _keys_problem(schema.get("keys"), len(choices))
    if kind == "rating":
        low, high, step = schema.get("min", 0), schema.get("max", 5), schema.get("step", 1)
        if not (is_finite_number(low) and is_finite_number(high) and is_finite_number(step)):
            return "rating min, max and step must be numbers"
        if not low < high or step <= 0:
            return "a rating needs min < max and step > 0"
        return None
    if kind == "number":
        return None
    if kind == "text":
        length = schema.get("max_length", DEFAULT_TEXT_LENGTH)
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            return "text max_length must be a positive integer"
        return None
    return f"answer type must be one of {', '.join(SCHEMA_TYPES)}, got {kind!r:.40}"


RESERVED_KEYS = frozenset(" su")  # Space plays, S skips, U undoes


def _keys_problem(keys: Any, count: int) -> str | None:
    if keys is None:
        return None
    if not isinstance(keys, list) or len(keys) != count:
        return f"choice keys must be a list of {count} keys, one per choice"
    if not all(isinstance(k, str) and len(k) == 1 for k in keys):
        return "each choice key must be a single character"
    lowered = [k.lower() for k in keys]
    if len(set(lowered)) != count:
        return "choice keys must all be different"
    if RESERVED_KEYS & set(lowered):
        return "choice keys cannot be Space, S (skip) or U (undo)"
    return None


def answer_problem(schema: dict[str, Any], answer: Any) -> str | None:
    """Why `answer` does not fit `schema` (a schema that passed `schema_problem`)."""
    kind = schema["type"]
    if kind == "choice":
        choices = schema["choices"]
        # `True in [1]` holds in Python; a label must match a choice's type as well.
        if not any(answer == c and type(answer) is type(c) for c in choices):
            return f"answer must be one of {choices!r:.200}, got {answer!r:.80}"
        return None
    if kind == "rating":
        low, high, step = schema.get("min", 0), schema.get("max", 5), schema.get("step", 1)
        if not is_finite_number(answer):
            return f"a rating must be a number, got {type(answer).__name__}"
        if not low <= answer <= high:
            return f"rating must be within {low}..{high}, got {answer}"
        # Exact arithmetic: with bounds near a double's limit, `answer - low` overflows floats.
        steps = (Fraction(answer) - Fraction(low)) / Fraction(step)
        if abs(steps - round(steps)) > Fraction(1, 10**9):
            return f"rating must be {low} plus a multiple of {step}, got {answer}"
        return None
    if kind == "number":
        return None if is_finite_number(answer) else \
            f"a number answer must be a finite number, got {type(answer).__name__}"
    length = schema.get("max_length", DEFAULT_TEXT_LENGTH)
    if not isinstance(answer, str):
        return f"a text answer must be a string, got {type(answer).__name__}"
    if len(answer) > length:
        return f"text answer is {len(answer)} characters, at most {length} allowed"
    return None
