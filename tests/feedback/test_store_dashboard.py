"""What the dashboard reads from the store: KPI history and per-labeler figures
(run against every backend in conftest.BACKENDS)."""

from __future__ import annotations

from swergio_al.feedback.store import Store
from tests.feedback.helpers import ROOM, make_request

NOW = 1_000_000.0


async def test_kpi_history_keeps_reports_per_room_and_model_oldest_first(store: Store) -> None:
    for version in (1, 2, 3):
        await store.record_kpi(ROOM, "model", {"version": version, "prequential": 0.5},
                               now=NOW + version)
    await store.record_kpi("feedback/other", "other", {"version": 1}, now=NOW)
    points = await store.kpi_history(room=ROOM)
    assert [p.data["version"] for p in points] == [1, 2, 3]
    assert points[0].as_json() == {"version": 1, "prequential": 0.5, "room": ROOM,
                                   "model": "model", "received": NOW + 1}
    assert [p.model for p in await store.kpi_history(model="other")] == ["other"]
    assert len(await store.kpi_history()) == 4


async def test_kpi_history_is_thinned_past_the_bound_keeping_first_and_newest(
        store: Store) -> None:
    for version in range(1, 12):
        await store.record_kpi(ROOM, "model", {"version": version}, now=NOW + version, keep=6)
    versions = [p.data["version"] for p in await store.kpi_history(room=ROOM, model="model")]
    assert len(versions) <= 6
    assert versions[0] == 1 and versions[-1] == 11  # the whole curve, coarser
    assert versions == sorted(versions)


async def test_labeler_stats_count_labels_median_seconds_and_skips(store: Store) -> None:
    for i in range(5):
        await store.submit(make_request(f"s{i}"), max_pending=10, now=NOW)
    for seconds, labeler in [(1.0, "ann"), (3.0, "ann"), (8.0, "ann"), (2.0, "bob")]:
        task = await store.claim(ROOM, labeler, lease_seconds=60, now=NOW)
        assert task is not None
        await store.record_label(task.task_id, labeler, "cat", seconds,
                                 label_id=f"L{seconds}", now=NOW)
    task = await store.claim(ROOM, "bob", lease_seconds=60, now=NOW)
    assert task is not None
    await store.skip(task.task_id, "bob", now=NOW)
    rows = {row.labeler: row for row in await store.labeler_stats(ROOM)}
    assert (rows["ann"].labels, rows["ann"].median_seconds, rows["ann"].skips) == (3, 3.0, 0)
    assert (rows["bob"].labels, rows["bob"].median_seconds, rows["bob"].skips) == (1, 2.0, 1)
    assert await store.labeler_stats("feedback/nobody") == []
