"""The store contract, run against every backend in conftest.BACKENDS."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from swergio_al.feedback.records import (
    LimitReached,
    NotYourTask,
    StoreUnavailable,
    Submitted,
    TaskStatus,
    UnknownTask,
)
from swergio_al.feedback.store import SQLiteStore, Store, create_store
from swergio_al.feedback.store.schema import LATEST
from tests.feedback.helpers import ROOM, make_request

LEASE = 60.0
NOW = 1_000_000.0


async def _claim(store: Store, labeler: str = "ann", *, now: float = NOW, room: str = ROOM):
    return await store.claim(room, labeler, lease_seconds=LEASE, now=now)


async def _label(store: Store, labeler: str = "ann", answer: object = "cat", *,
                 label_id: str = "L1", now: float = NOW):
    task = await _claim(store, labeler, now=now)
    assert task is not None
    return await store.record_label(task.task_id, labeler, answer, 2.0, label_id=label_id,
                                    now=now)


async def test_a_new_store_is_at_the_latest_schema_version(store: Store) -> None:
    assert await store.schema_version() == LATEST


async def test_submit_deduplicates_by_room_and_sample(store: Store) -> None:
    assert await store.submit(make_request("a", priority=1), max_pending=10, now=NOW) \
        is Submitted.CREATED
    assert await store.submit(make_request("a", priority=9), max_pending=10, now=NOW) \
        is Submitted.UPDATED
    assert await store.submit(make_request("a", room="feedback/other"), max_pending=10,
                              now=NOW) is Submitted.CREATED
    task = await _claim(store)
    assert task is not None and task.request.priority == 9
    assert (await store.stats(ROOM, now=NOW)).queued == 0


async def test_claim_takes_the_highest_priority_then_the_oldest(store: Store) -> None:
    for sample, priority in [("low", 0), ("high", 5), ("mid1", 2), ("mid2", 2)]:
        await store.submit(make_request(sample, priority=priority), max_pending=10, now=NOW)
    order = []
    while (task := await _claim(store)) is not None:
        order.append(task.request.sample_id)
    assert order == ["high", "mid1", "mid2", "low"]


async def test_claim_round_trips_the_request(store: Store) -> None:
    request = make_request(42, priority=0.5, answer={"type": "rating", "min": 0, "max": 3})
    request.prediction, request.confidence, request.question = [0.1, 0.9], 0.9, "how good?"
    await store.submit(request, max_pending=10, now=NOW)
    task = await _claim(store)
    assert task is not None
    assert task.request == request
    assert task.labeler == "ann" and task.lease_expires == NOW + LEASE
    assert task.status is TaskStatus.LEASED
    assert await store.task(task.task_id) == task
    assert await store.task("missing") is None


async def test_concurrent_claims_never_hand_out_a_sample_twice(store: Store) -> None:
    for i in range(20):
        await store.submit(make_request(i), max_pending=100, now=NOW)
    claims = await asyncio.gather(*(_claim(store, f"l{i % 5}") for i in range(30)))
    samples = [t.request.sample_id for t in claims if t is not None]
    assert sorted(samples) == list(range(20))


async def test_max_pending_counts_open_requests_only(store: Store) -> None:
    await store.submit(make_request("a"), max_pending=1, now=NOW)
    with pytest.raises(LimitReached):
        await store.submit(make_request("b"), max_pending=1, now=NOW)
    await _label(store)
    assert await store.submit(make_request("b"), max_pending=1, now=NOW) is Submitted.CREATED
    # Another model has its own budget.
    assert await store.submit(make_request("c", requester="other"), max_pending=1, now=NOW) \
        is Submitted.CREATED


async def test_record_label_closes_task_and_request(store: Store) -> None:
    await store.submit(make_request("a"), max_pending=10, now=NOW)
    label = await _label(store, answer={"x": 1})
    assert (label.sample_id, label.requester, label.labeler, label.answer) == \
        ("a", "model", "ann", {"x": 1})
    assert await _claim(store, "bob") is None
    assert await store.submit(make_request("a"), max_pending=10, now=NOW) \
        is Submitted.ALREADY_LABELED
    stats = await store.stats(ROOM, now=NOW)
    assert (stats.queued, stats.in_flight, stats.labeled, stats.labels_per_minute) == (0, 0, 1, 1)
    assert (await store.stats(ROOM, now=NOW + 61)).labels_per_minute == 0


async def test_label_for_a_task_not_leased_to_you_is_refused(store: Store) -> None:
    await store.submit(make_request("a"), max_pending=10, now=NOW)
    task = await _claim(store)
    assert task is not None
    with pytest.raises(NotYourTask):
        await store.record_label(task.task_id, "bob", "cat", None, label_id="x", now=NOW)
    with pytest.raises(UnknownTask):
        await store.record_label("nope", "ann", "cat", None, label_id="x", now=NOW)
    await store.record_label(task.task_id, "ann", "cat", None, label_id="x", now=NOW)
    with pytest.raises(UnknownTask):  # only once
        await store.record_label(task.task_id, "ann", "dog", None, label_id="y", now=NOW)
    assert [lb.label_id async for lb in store.labels()] == ["x"]


async def test_skip_excludes_the_skipper_only(store: Store) -> None:
    await store.submit(make_request("a"), max_pending=10, now=NOW)
    task = await _claim(store)
    assert task is not None
    with pytest.raises(NotYourTask):
        await store.skip(task.task_id, "bob", now=NOW)
    await store.skip(task.task_id, "ann", now=NOW)
    assert await _claim(store, "ann") is None
    again = await _claim(store, "bob")
    assert again is not None and again.request.sample_id == "a"


async def test_release_and_expire_return_leases(store: Store) -> None:
    for sample in "abc":
        await store.submit(make_request(sample), max_pending=10, now=NOW)
    first, second = await _claim(store), await _claim(store)
    late = await _claim(store, "bob", now=NOW + 30)
    assert first and second and late
    assert {t.task_id for t in await store.leased_to(ROOM, "ann", now=NOW)} == \
        {first.task_id, second.task_id}
    returned = await store.release(ROOM, "ann", now=NOW)
    assert {t.task_id for t in returned} == {first.task_id, second.task_id}
    assert await store.leased_to(ROOM, "ann", now=NOW) == []
    expired = await store.expire(now=NOW + 30 + LEASE)
    assert [t.task_id for t in expired] == [late.task_id]
    assert (await store.stats(ROOM, now=NOW)).queued == 3
    # A returned lease may go back to the same labeler.
    assert await _claim(store, "ann") is not None


async def test_overlap_needs_distinct_labelers(store: Store) -> None:
    await store.submit(make_request("a", overlap=2), max_pending=10, now=NOW)
    one = await _claim(store, "ann")
    assert one is not None and await _claim(store, "ann") is None
    two = await _claim(store, "bob")
    assert two is not None and await _claim(store, "cy") is None
    await store.record_label(one.task_id, "ann", "cat", None, label_id="1", now=NOW)
    assert await _claim(store, "ann") is None  # labeled it already
    await store.record_label(two.task_id, "bob", "dog", None, label_id="2", now=NOW)
    assert await store.submit(make_request("a"), max_pending=10, now=NOW) \
        is Submitted.ALREADY_LABELED


async def test_cancel_and_rescore_touch_only_the_requesters_open_samples(store: Store) -> None:
    for sample, priority in [("a", 3), ("b", 2), ("c", 1)]:
        await store.submit(make_request(sample, priority=priority), max_pending=10, now=NOW)
    held = await _claim(store)
    assert held is not None and held.request.sample_id == "a"
    assert await store.cancel(ROOM, "other", ["a", "b"], now=NOW) == []
    withdrawn = await store.cancel(ROOM, "model", ["a", "b", "zzz"], now=NOW)
    assert [t.task_id for t in withdrawn] == [held.task_id]
    with pytest.raises(UnknownTask):
        await store.record_label(held.task_id, "ann", "cat", None, label_id="x", now=NOW)
    assert await store.rescore(ROOM, "other", {"c": 9}, now=NOW) == 0
    assert await store.rescore(ROOM, "model", {"c": 9, "b": 9}, now=NOW) == 1
    assert await store.submit(make_request("b", priority=1), max_pending=10, now=NOW) \
        is Submitted.REOPENED
    order = [t.request.sample_id for t in [await _claim(store), await _claim(store)] if t]
    assert order == ["c", "b"]


async def test_cancel_keeping_leased_requests_leaves_held_ones_open(store: Store) -> None:
    for sample, priority in [("a", 3), ("b", 2), ("c", 1)]:
        await store.submit(make_request(sample, priority=priority), max_pending=10, now=NOW)
    held = await _claim(store)
    assert held is not None and held.request.sample_id == "a"
    kept = await store.cancel(ROOM, "model", ["a", "b"], now=NOW, keep_leased=True)
    assert [t.task_id for t in kept] == [held.task_id]
    assert await store.submit(make_request("b"), max_pending=10, now=NOW) \
        is Submitted.REOPENED  # b was canceled
    label = await store.record_label(held.task_id, "ann", "cat", None, label_id="x", now=NOW)
    assert label.sample_id == "a"  # the held one is still answered
    # a kept request whose lease is given up is open again, as any other
    await store.submit(make_request("d", priority=9), max_pending=10, now=NOW)
    again = await _claim(store, "bob")
    assert again is not None and again.request.sample_id == "d"
    assert await store.cancel(ROOM, "model", ["d"], now=NOW, keep_leased=True) != []
    await store.skip(again.task_id, "bob", now=NOW)
    assert await store.cancel(ROOM, "model", ["d"], now=NOW, keep_leased=True) == []
    assert await store.submit(make_request("d"), max_pending=10, now=NOW) is Submitted.REOPENED


async def test_ack_unacked_and_history(store: Store) -> None:
    for sample in ("a", "b"):
        await store.submit(make_request(sample), max_pending=10, now=NOW)
    await _label(store, label_id="L1")
    await _label(store, label_id="L2")
    assert [lb.label_id for lb in await store.unacked("model")] == ["L1", "L2"]
    assert await store.ack("L1", "someone-else", now=NOW) is False
    assert await store.ack("nope", "model", now=NOW) is False
    assert await store.ack("L1", "model", now=NOW) is True
    assert await store.ack("L1", "model", now=NOW) is True  # idempotent
    assert [lb.label_id for lb in await store.unacked("model")] == ["L2"]
    history = await store.history(ROOM, "model")
    assert [(lb.label_id, lb.acked) for lb in history] == [("L1", True), ("L2", False)]
    assert await store.history("feedback/other", "model") == []


async def test_labels_come_in_batches_and_by_room(store: Store) -> None:
    for i in range(7):
        room = ROOM if i % 2 else "feedback/b"
        await store.submit(make_request(i, room=room), max_pending=10, now=NOW)
        task = await _claim(store, room=room)
        assert task is not None
        await store.record_label(task.task_id, "ann", i, None, label_id=f"L{i}", now=NOW)
    assert [lb.label_id async for lb in store.labels(batch=2)] == [f"L{i}" for i in range(7)]
    assert [lb.sample_id async for lb in store.labels(room=ROOM, batch=2)] == [1, 3, 5]
    assert await store.rooms() == ["feedback/b", ROOM]


async def test_sqlite_store_survives_reopen_and_refuses_newer_files(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = create_store(f"sqlite:///{path}")
    await store.open()
    await store.submit(make_request("a"), max_pending=10, now=NOW)
    await _label(store)
    await store.close()
    reopened = SQLiteStore(str(path))
    await reopened.open()
    assert [lb.answer async for lb in reopened.labels()] == ["cat"]
    await reopened.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = ?", (LATEST + 1,))
    with pytest.raises(RuntimeError, match="newer"):
        await SQLiteStore(str(path)).open()


async def test_sqlite_store_migrates_an_older_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # what a release before any schema would leave
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    store = SQLiteStore(str(path))
    await store.open()
    try:
        assert await store.schema_version() == LATEST
        await store.submit(make_request("a"), max_pending=10, now=NOW)
    finally:
        await store.close()


def test_store_urls() -> None:
    assert isinstance(create_store("sqlite:///relative.db"), SQLiteStore)
    with pytest.raises(ValueError, match="sqlite:///"):
        create_store("sqlite://")
    with pytest.raises(ValueError, match="unknown store"):
        create_store("mysql://x")


async def test_concurrent_labels_commit_independently(store: Store) -> None:
    # SQLite commits labels that arrive together in one fsync; a bad one among
    # them must fail alone.
    for i in range(10):
        await store.submit(make_request(i), max_pending=100, now=NOW)
    tasks = [await _claim(store, f"l{i}") for i in range(10)]
    assert all(tasks)
    attempts = [store.record_label(t.task_id, f"l{i}", i, None, label_id=f"L{i}", now=NOW)
                for i, t in enumerate(tasks) if t is not None]
    attempts.insert(3, store.record_label("missing", "l0", 0, None, label_id="bad", now=NOW))
    attempts.insert(6, store.record_label(tasks[1].task_id, "l9", 0, None, label_id="bad2",
                                          now=NOW))  # type: ignore[union-attr]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    assert isinstance(outcomes[3], UnknownTask) and isinstance(outcomes[6], NotYourTask)
    good = [o for o in outcomes if not isinstance(o, BaseException)]
    assert sorted(lb.answer for lb in good) == list(range(10))
    assert sorted([lb.label_id async for lb in store.labels()]) == sorted(f"L{i}"
                                                                           for i in range(10))


async def test_sqlite_store_migrates_a_version_one_file_keeping_its_data(
        tmp_path: Path) -> None:
    from swergio_al.feedback.store.schema import MIGRATIONS

    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:  # a file as the first release left it
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in MIGRATIONS[0]:
            db.execute(statement.format(serial="INTEGER PRIMARY KEY"))
        db.execute("INSERT INTO schema_version VALUES (1)")
        db.execute("INSERT INTO requests (room, sample_id, requester, kind, answer, status, "
                   "created, updated) VALUES (?, 'old', 'model', 'text', ?, 'open', 0, 0)",
                   (ROOM, '{"type": "text"}'))
    store = SQLiteStore(str(path))
    await store.open()
    try:
        assert await store.schema_version() == LATEST
        task = await _claim(store)
        assert task is not None and task.request.sample_id == "old"
        assert task.request.extra == {}
    finally:
        await store.close()


async def test_the_requesters_extra_keys_round_trip(store: Store) -> None:
    request = make_request("a")
    request.extra = {"features": [0.25, 4.0], "note": "x"}
    await store.submit(request, max_pending=10, now=NOW)
    task = await _claim(store)
    assert task is not None and task.request.extra == request.extra
    label = await store.record_label(task.task_id, "ann", "cat", None, label_id="L", now=NOW)
    assert label.extra == request.extra
    assert label.message_data(replay=True)["features"] == [0.25, 4.0]
    assert [lb.extra for lb in await store.unacked("model")] == [request.extra]
    assert [lb.extra for lb in await store.history(ROOM, "model")] == [request.extra]
    await store.submit(make_request("b"), max_pending=10, now=NOW)  # none: an empty dict
    other = await _claim(store)
    assert other is not None and other.request.extra == {}


async def test_a_closed_store_refuses_clearly(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable):
        await _claim(store)
    with pytest.raises(StoreUnavailable):
        await store.record_label("t", "ann", "cat", None, label_id="L", now=NOW)
    await store.close()  # idempotent


async def test_raise_overlap_reopens_a_done_request_for_one_more_answer(store: Store) -> None:
    await store.submit(make_request("a"), max_pending=10, now=NOW)
    await _label(store, "ann")
    assert await _claim(store, "bob") is None  # overlap 1, done
    assert await store.raise_overlap(ROOM, "model", "a", 2, now=NOW)
    assert not await store.raise_overlap(ROOM, "model", "a", 2, now=NOW)  # allows 2 already
    assert not await store.raise_overlap(ROOM, "someone-else", "a", 3, now=NOW)
    assert await _claim(store, "ann") is None  # never twice to the same labeler
    await _label(store, "bob", label_id="L2")
    assert await _claim(store, "cid") is None  # done again at 2
    assert [label.labeler for label in await store.history(ROOM, "model")] == ["ann", "bob"]
