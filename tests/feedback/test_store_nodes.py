"""The PostgreSQL store as several nodes use it: separate pools on one database.

Each PostgresStore here stands for one server process. Skipped without
PostgreSQL at 127.0.0.1:5432 (db test); every test has a schema of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from swergio_al.feedback.records import SampleId, StoreUnavailable, Task, UnknownTask
from swergio_al.feedback.store.schema import LATEST
from tests.feedback.helpers import ROOM, make_request
from tests.feedback.postgres import drop_schema, fresh_schema_url, require_postgres
from tests.helpers import free_port

if TYPE_CHECKING:
    from swergio_al.feedback.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres
Nodes = tuple["PostgresStore", "PostgresStore"]


@pytest.fixture
async def url() -> AsyncIterator[str]:
    require_postgres()
    url = fresh_schema_url()
    yield url
    await drop_schema(url)


@pytest.fixture
async def two_nodes(url: str) -> AsyncIterator[Nodes]:
    from swergio_al.feedback.store.postgres import PostgresStore

    one, two = PostgresStore(url), PostgresStore(url)
    # Nodes starting together: the migration runs once, under its lock.
    await asyncio.gather(one.open(), two.open())
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


async def test_nodes_starting_together_migrate_once_and_reopen_idempotently(url: str) -> None:
    from swergio_al.feedback.store.postgres import PostgresStore

    stores = [PostgresStore(url) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        assert [await store.schema_version() for store in stores] == [LATEST] * 4
        await stores[0].close()
        await stores[0].open()  # again: nothing to do
        assert await stores[0].schema_version() == LATEST
    finally:
        for store in stores:
            await store.close()


async def test_labelers_on_two_nodes_never_lease_the_same_sample(two_nodes: Nodes) -> None:
    one, two = two_nodes
    for i in range(40):
        await one.submit(make_request(i), max_pending=100, now=1.0)

    async def drain(store: PostgresStore, labeler: str) -> list[SampleId]:
        taken: list[SampleId] = []
        while (task := await store.claim(ROOM, labeler, lease_seconds=60, now=2.0)) is not None:
            taken.append(task.request.sample_id)
        return taken

    takers = [drain(store, f"{store_name}-{i}") for store_name, store in (("a", one), ("b", two))
              for i in range(4)]
    taken = [sample for batch in await asyncio.gather(*takers) for sample in batch]
    assert sorted(taken) == list(range(40)), "a sample was leased twice or not at all"
    stats = await two.stats(ROOM, now=3.0)
    assert (stats.queued, stats.in_flight) == (0, 40)


async def test_a_label_racing_an_expiry_on_another_node_wins_or_loses_whole(
        two_nodes: Nodes) -> None:
    one, two = two_nodes
    tasks = []
    for i in range(20):
        await one.submit(make_request(i), max_pending=100, now=1.0)
        task = await one.claim(ROOM, "ann", lease_seconds=1, now=1.0)
        assert task is not None
        tasks.append(task)

    async def label(task: Task) -> str | None:
        try:
            await one.record_label(task.task_id, "ann", "cat", 1.0,
                                   label_id=f"label-{task.task_id}", now=5.0)
        except UnknownTask:
            return None
        return task.task_id

    labels = asyncio.gather(*(label(t) for t in tasks))
    outcomes, expired = await asyncio.gather(labels, two.expire(now=5.0))
    labeled = {task_id for task_id in outcomes if task_id is not None}
    expired_ids = {task.task_id for task in expired}
    assert labeled.isdisjoint(expired_ids)
    assert labeled | expired_ids == {task.task_id for task in tasks}
    stats = await one.stats(ROOM, now=5.0)
    assert (stats.labeled, stats.in_flight, stats.queued) == \
        (len(labeled), 0, len(expired_ids))


async def test_unreachable_postgres_is_unavailable_naming_the_address_not_the_password() -> None:
    from swergio_al.feedback.store.postgres import PostgresStore

    store = PostgresStore(f"postgresql://ann:sekret@127.0.0.1:{free_port()}/test")
    with pytest.raises(StoreUnavailable, match=r"ann:\*\*\*@127\.0\.0\.1") as raised:
        await store.open()
    assert "sekret" not in str(raised.value)


def test_a_schema_that_is_not_a_plain_identifier_is_refused() -> None:
    from swergio_al.feedback.store.postgres import PostgresStore

    with pytest.raises(ValueError, match="plain SQL identifier"):
        PostgresStore('postgresql://127.0.0.1/test?schema=x";drop')


async def test_extra_keys_round_trip_to_the_requester(two_nodes: Nodes) -> None:
    one, two = two_nodes
    request = make_request("s1")
    request.extra = {"features": [0.5, 1.5], "batch": 3}
    await one.submit(request, max_pending=10, now=1.0)
    task = await two.claim(ROOM, "ann", lease_seconds=60, now=2.0)
    assert task is not None and task.request.extra == request.extra
    await two.record_label(task.task_id, "ann", "cat", 1.0, label_id="L1", now=3.0)
    (unacked,) = await one.unacked("model")
    (history,) = await one.history(ROOM, "model")
    assert unacked.extra == history.extra == request.extra


async def test_a_first_release_schema_is_migrated_in_place(url: str) -> None:
    import asyncpg

    from swergio_al.feedback.store.postgres import PostgresStore
    from swergio_al.feedback.store.postgres_db import split_url
    from swergio_al.feedback.store.schema import MIGRATIONS

    dsn, schema = split_url(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": f'"{schema}"'})
    try:  # the tables as the first release left them, with one open request
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in MIGRATIONS[0]:
            await conn.execute(statement.format(serial="SERIAL PRIMARY KEY"))
        await conn.execute("INSERT INTO schema_version VALUES (1)")
        await conn.execute("INSERT INTO requests (room, sample_id, requester, kind, answer, "
                           "status, created, updated) VALUES ($1, 'old', 'model', 'text', "
                           "'{\"type\": \"text\"}', 'open', 0, 0)", ROOM)
    finally:
        await conn.close()
    store = PostgresStore(url)
    await store.open()
    try:
        assert await store.schema_version() == LATEST
        task = await store.claim(ROOM, "ann", lease_seconds=60, now=1.0)
        assert task is not None and task.request.sample_id == "old"
        assert task.request.extra == {}
    finally:
        await store.close()


async def test_a_lost_database_connection_is_unavailable_once_then_replaced(url: str) -> None:
    import asyncpg

    from swergio_al.feedback.store.postgres import PostgresStore
    from swergio_al.feedback.store.postgres_db import split_url

    app = f"swergio_al_test_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(f"{url}&application_name={app}")
    await store.open()
    try:
        await store.submit(make_request(1), max_pending=10, now=1.0)
        admin = await asyncpg.connect(split_url(url)[0])
        try:
            killed = await admin.fetchval("SELECT COUNT(pg_terminate_backend(pid)) FROM "
                                          "pg_stat_activity WHERE application_name = $1", app)
        finally:
            await admin.close()
        assert killed >= 1
        failures = 0
        for _ in range(3):  # the dead connection fails one call; the pool then replaces it
            try:
                stats = await store.stats(ROOM, now=2.0)
                break
            except StoreUnavailable:
                failures += 1
        assert failures <= 1 and stats.queued == 1
    finally:
        await store.close()


async def test_a_models_stream_of_requests_and_acks_goes_in_few_round_trips(
        two_nodes: Nodes) -> None:
    from swergio_al.feedback.records import LimitReached, Submitted

    store, _ = two_nodes
    batches: list[int] = []
    for coalescer in (store._submits, store._acks):
        run = coalescer._run

        async def counted(calls: list, run=run) -> list:  # type: ignore[type-arg]
            batches.append(len(calls))
            return await run(calls)  # type: ignore[no-any-return]

        coalescer._run = counted  # type: ignore[method-assign]
    # 60 requests sent at once, the limit 50: each answered as if sent alone, in order.
    outcomes = await asyncio.gather(
        *(store.submit(make_request(i), max_pending=50, now=1.0) for i in range(60)),
        return_exceptions=True)
    assert outcomes[:50] == [Submitted.CREATED] * 50
    assert all(isinstance(o, LimitReached) for o in outcomes[50:]), outcomes[50:]
    assert len(batches) < 10, batches  # not one round trip each
    # The same sample again in the same stream: updated, in order.
    again = await asyncio.gather(store.submit(make_request(0, priority=5.0), max_pending=50,
                                              now=2.0),
                                 store.submit(make_request(0, priority=6.0), max_pending=50,
                                              now=2.0))
    assert again == [Submitted.UPDATED, Submitted.UPDATED]
    task = await store.claim(ROOM, "ann", lease_seconds=60.0, now=3.0)
    assert task is not None and task.request.sample_id == 0 and task.request.priority == 6.0
    label = await store.record_label(task.task_id, "ann", "cat", 1.0, label_id="L0", now=3.0)
    batches.clear()
    acks = await asyncio.gather(store.ack(label.label_id, "model", now=4.0),
                                store.ack("no-such-label", "model", now=4.0),
                                store.ack(label.label_id, "someone-else", now=4.0),
                                store.ack(label.label_id, "model", now=5.0))
    assert acks == [True, False, False, True] and len(batches) <= 2
    assert await store.unacked("model") == []
