"""The PostgreSQL store's plumbing: the asyncpg pool, transactions, migrations.

`PostgresDB` is the base of `PostgresStore` (postgres.py: the queue's writes)
by way of `PostgresReads` (postgres_reads.py: labels, figures, KPI history).
Commits use the server's `synchronous_commit` (on by default): a label is on
disk before the ACK goes out. `?schema=name` in the URL keeps the tables in
their own schema (created if missing); tests use one per run.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from swergio_al.config import redact_url
from swergio_al.feedback.records import StoreUnavailable
from swergio_al.feedback.store.base import Store
from swergio_al.feedback.store.pending import PendingEstimate
from swergio_al.feedback.store.pg_functions import FUNCTIONS
from swergio_al.feedback.store.schema import LATEST, MIGRATIONS

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the PostgreSQL store needs the asyncpg package: "
                      "pip install 'swergio-al[postgres]'") from exc

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# What a lost or confused database connection raises (asyncpg's internal state
# error included: seen on a connection the server terminated while it was idle).
_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
             OSError, TimeoutError)
#: What a refusal from the database (a function's RAISE) is.
PostgresError = asyncpg.PostgresError


def split_url(url: str) -> tuple[str, str | None]:
    """`postgresql://...?schema=name` → (DSN for asyncpg, schema or None)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for key, value in reversed(query) if key == "schema"), None)
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"schema {schema!r} in the store url must be a plain SQL identifier "
                         "(letters, digits, underscores)")
    rest = [(key, value) for key, value in query if key != "schema"]
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def _row(record: Any) -> tuple[Any, ...]:
    return tuple(record)


class PostgresDB(Store):
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.pool_size = pool_size
        self._dsn, self.schema = split_url(url)
        self._pool: asyncpg.Pool | None = None
        self._pending = PendingEstimate()

    # -- plumbing ----------------------------------------------------------

    @asynccontextmanager
    async def _connection(self, *, transaction: bool = True) -> AsyncIterator[Any]:
        """A pooled connection (in a transaction); backend failures become StoreUnavailable."""
        if self._pool is None:
            raise StoreUnavailable("the feedback store is not open")
        try:
            async with self._pool.acquire() as conn:
                try:
                    if transaction:
                        async with conn.transaction():
                            yield conn
                    else:
                        yield conn
                except _FAILURES:
                    conn.terminate()  # in doubt: the pool opens a fresh one for the next call
                    raise
        except _FAILURES as exc:
            raise StoreUnavailable(f"feedback store failed: {exc}") from exc

    async def open(self) -> None:
        if self._pool is not None:
            return
        settings = {"search_path": f'"{self.schema}"'} if self.schema else {}
        try:
            pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self.pool_size,
                                             server_settings=settings)
        except _FAILURES as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL at {redact_url(self._dsn)}: "
                                   f"{exc}") from exc
        self._pool = pool
        try:
            await self._migrate()
        except BaseException:
            self._pool = None
            await pool.close()
            raise

    async def _migrate(self) -> None:
        async with self._connection() as conn:
            # One node at a time; the others find the work done.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                               f"swergio_al:{self.schema or ''}")
            if self.schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                               "(version INTEGER NOT NULL)")
            current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            if current > LATEST:
                raise RuntimeError(f"the store has schema version {current}, newer than this "
                                   f"release understands ({LATEST}); upgrade swergio-al")
            for version in range(current + 1, LATEST + 1):
                for statement in MIGRATIONS[version - 1]:
                    await conn.execute(statement.format(serial="SERIAL PRIMARY KEY",
                                                            generated="STORED"))
                await conn.execute("DELETE FROM schema_version")
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            for function in FUNCTIONS:
                await conn.execute(function)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def schema_version(self) -> int:
        async with self._connection(transaction=False) as conn:
            return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) "
                                           "FROM schema_version"))
