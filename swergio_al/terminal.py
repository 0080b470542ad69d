"""Wording shared by what the commands print (serve, label, the demo), so each says it
the same way."""

from __future__ import annotations


def count(n: int, noun: str) -> str:
    """'1 label', '2 labels', '0 labels': the plural only when n is not 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
