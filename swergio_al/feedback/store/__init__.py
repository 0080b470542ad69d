"""Durable feedback state behind one small interface; `create_store(url)` picks the backend."""

from __future__ import annotations

from swergio_al.feedback.store.base import Store
from swergio_al.feedback.store.sqlite import SQLiteStore, sqlite_path

__all__ = ["SQLiteStore", "Store", "create_store"]


def create_store(url: str) -> Store:
    """`sqlite:///path/to/file.db` (the default) or `postgresql://user@host/db`."""
    if url.startswith("sqlite:"):
        return SQLiteStore(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        from swergio_al.feedback.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]  # optional dependency

        return PostgresStore(url)  # type: ignore[no-any-return,unused-ignore]
    raise ValueError(f"unknown store {url!r}: use sqlite:///path/to/file.db or "
                     "postgresql://user@host/db")
