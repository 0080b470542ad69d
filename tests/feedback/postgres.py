"""PostgreSQL for the store suite and the multi-node tests: a fresh schema per use.

Needs PostgreSQL at 127.0.0.1:5432 with a database `test` (trust auth); where
it is absent the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from swergio_al.feedback.store import Store

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
RUN = uuid.uuid4().hex[:8]
_schemas = itertools.count()


@functools.cache
def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used here, or None (checked once per run)."""
    try:
        import asyncpg
    except ImportError:
        return "the asyncpg package is not installed"

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES, timeout=2)
        await conn.close()

    # Fixtures call this from inside the test's event loop: probe on a thread of our own.
    with ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(asyncio.run, probe()).result()
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            return f"no PostgreSQL database test at 127.0.0.1:5432 ({exc})"
    return None


def require_postgres() -> None:
    problem = postgres_problem()
    if problem:
        pytest.skip(f"needs PostgreSQL: {problem}")


def fresh_schema_url() -> str:
    return f"{POSTGRES}?schema=swergio_al_test_{RUN}_{next(_schemas)}"


async def drop_schema(url: str) -> None:
    import asyncpg

    from swergio_al.feedback.store.postgres_db import split_url

    dsn, schema = split_url(url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def postgres_backend(tmp_path: Path) -> Store:
    """A PostgresStore in a schema of its own, dropped again when the store closes."""
    require_postgres()
    from swergio_al.feedback.store.postgres import PostgresStore

    class DisposablePostgresStore(PostgresStore):
        async def close(self) -> None:
            await super().close()
            await drop_schema(self.url)

    return DisposablePostgresStore(fresh_schema_url())
