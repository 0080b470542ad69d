"""Feedback fixtures: a store per backend (one suite runs against every backend)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from swergio_al.feedback.store import SQLiteStore, Store
from tests.feedback.postgres import postgres_backend


def _sqlite(tmp_path: Path) -> Store:
    return SQLiteStore(str(tmp_path / "feedback.db"))


# A backend is a name and a factory; a PostgreSQL backend adds one entry here
# (skipping when no server is reachable).
BACKENDS: dict[str, Callable[[Path], Store]] = {"sqlite": _sqlite, "postgres": postgres_backend}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend = BACKENDS[request.param](tmp_path)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
