"""The SQLite file under `SQLiteStore`: one file in WAL mode, driven by one dedicated thread.

Every statement runs on that thread, so writes are ordered, the event loop
never blocks on disk, and `claim` is atomic without any locking of our own.
Commits holding a label are fsync'd (synchronous=FULL); the rest can be replayed
by their senders and commit with synchronous=NORMAL, which survives a process
crash (but not a power cut). Writes a model may pipeline share group commits
(`_group`), which keep the order the writes came in.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from swergio_al.feedback.records import StoreError, StoreUnavailable
from swergio_al.feedback.store.schema import LATEST, MIGRATIONS
from swergio_al.feedback.store.worker import StoreThread, settle

T = TypeVar("T")


class SQLiteDB:
    """The connection, its thread, migrations, transactions and group commits."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._thread: StoreThread | None = None
        self._batch_lock = threading.Lock()
        # Writes waiting for the next group commit, each saying if it must be fsync'd.
        self._waiting: list[tuple[bool, Callable[..., Any], tuple[Any, ...],
                                  asyncio.Future[Any]]] = []
        self._queued = False
        self._synchronous = "NORMAL"  # the connection's setting now (store thread only)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._thread is None:
            raise StoreUnavailable("the feedback store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        try:
            self._thread.post(partial(fn, *args), future, loop)
        except RuntimeError:  # closing: the thread takes no more work
            raise StoreUnavailable("the feedback store is closing") from None
        try:
            return await future
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"feedback store failed: {exc}") from exc

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("the feedback store is not open")
        return self._db

    @contextmanager
    def _transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        db = self.db
        synchronous = "FULL" if durable else "NORMAL"
        if synchronous != self._synchronous:
            db.execute(f"PRAGMA synchronous={synchronous}")
            self._synchronous = synchronous
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            self._db = db
            self._migrate()
        except BaseException:
            self._db = None
            db.close()
            raise

    def _migrate(self) -> None:
        db = self.db
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = self._version()
        if current > LATEST:
            raise RuntimeError(f"{self.path} has schema version {current}, newer than this "
                               f"release understands ({LATEST}); upgrade swergio-al")
        for version in range(current + 1, LATEST + 1):
            with self._transaction(durable=True) as tx:
                for statement in MIGRATIONS[version - 1]:
                    tx.execute(statement.format(serial="INTEGER PRIMARY KEY",
                                                generated="VIRTUAL"))
                tx.execute("DELETE FROM schema_version")
                tx.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _version(self) -> int:
        row = self.db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    async def open(self) -> None:
        if self._thread is not None:
            return
        self._thread = StoreThread("sqlite-store")
        try:
            await self._run(self._connect)
        except BaseException:
            thread, self._thread = self._thread, None
            await asyncio.get_running_loop().run_in_executor(None, thread.stop)
            raise

    async def close(self) -> None:
        if self._thread is None:
            return
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        thread, self._thread = self._thread, None
        await asyncio.get_running_loop().run_in_executor(None, thread.stop)

    async def schema_version(self) -> int:
        return await self._run(self._version)

    # -- group commits -----------------------------------------------------

    async def _group(self, durable: bool, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(tx, *args)` in the next group commit.

        Writes that arrive while a commit is under way wait for the next one and
        share it, so throughput grows with load instead of being capped at one
        transaction (or fsync) per write. A commit holding a label (`durable`) is
        fsync'd; one holding only writes their senders can replay (the model's
        requests and ACKs, claims) is not. Each write has its own savepoint: a
        refused one (StoreError) leaves the others to commit. Writes commit in
        the order they came, which the pipelined frames of a model rely on
        (relay/pipeline.py).
        """
        if self._thread is None:
            raise StoreUnavailable("the feedback store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._batch_lock:
            self._waiting.append((durable, fn, args, future))
            start = not self._queued
            self._queued = True
        if start:
            try:
                self._thread.post(partial(self._commit_group, loop), None, loop)
            except RuntimeError:  # closing: the store thread takes no more work
                with self._batch_lock:
                    stranded, self._waiting = self._waiting, []
                    self._queued = False
                closing = StoreUnavailable("the feedback store is closing")
                for _, _, _, waiter in stranded:
                    if waiter is not future and not waiter.done():
                        waiter.set_exception(closing)
                raise closing from None
        return await future

    def _commit_group(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._batch_lock:
            batch, self._waiting = self._waiting, []
            self._queued = False
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            with self._transaction(durable=any(durable for durable, *_ in batch)) as tx:
                for _, fn, args, future in batch:
                    tx.execute("SAVEPOINT write")
                    try:
                        outcomes.append((future, fn(tx, *args), None))
                    except StoreError as exc:  # this write only: the others still commit
                        tx.execute("ROLLBACK TO write")
                        outcomes.append((future, None, exc))
                    tx.execute("RELEASE write")
        except sqlite3.Error as exc:
            failed = StoreUnavailable(f"feedback store failed: {exc}")
            outcomes = [(future, None, failed) for *_, future in batch]
        except Exception as exc:  # rolled back; no waiter may be left hanging
            outcomes = [(future, None, exc) for *_, future in batch]
        loop.call_soon_threadsafe(settle, outcomes)
