"""/api/quality and the export's aggregate columns, through a served app and Python labelers."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from sklearn.linear_model import SGDClassifier

from swergio_al.feedback import Labeler
from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.feedback.store import Store
from swergio_al.learning import ActiveLearner
from tests.conftest import MakeServer
from tests.feedback.helpers import get_api

ROOM = "feedback/quality"
CHOICE = {"type": "choice", "choices": ["a", "b", "c"]}
SAMPLES = 40


def truth(task: dict[str, Any]) -> str:
    content = task["content"]
    return "abc"[int(np.argmax([content["x0"], content["x1"], content["x2"]]))]


async def test_quality_flags_the_random_clicker_and_survives_a_restart(
        make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.05)
    url = str(server.make_url("/ws"))
    clicks = random.Random(7)
    learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0),
                            classes=["a", "b", "c"], random_state=0)
    loop = FeedbackLoop(learner, name="model", url=url, answer=CHOICE, feedback_room=ROOM,
                        overlap=3, flag_below=0.6)
    labelers = [Labeler(name, url, truth, room=ROOM) for name in ("ann", "bob", "cid")]
    labelers.append(Labeler("rnd", url, lambda task: clicks.choice("abc"), room=ROOM))
    rng = np.random.default_rng(0)
    async with loop:
        for labeler in labelers:
            await labeler.start()
        try:
            for i in range(SAMPLES):
                await loop.ask(i, rng.normal(size=3))
            # A label reaches the model only once committed and acknowledged to its labeler.
            await loop.wait_learned(3 * SAMPLES, timeout=30)
        finally:
            for labeler in labelers:
                await labeler.close()
    report = (await get_api(server, "/api/quality"))[ROOM]
    assert report["answers"] == 3 * SAMPLES and report["samples"] == SAMPLES
    per = report["per_labeler"]
    assert set(per) == {"ann", "bob", "cid", "rnd"}
    assert per["rnd"]["flagged"] and not any(per[n]["flagged"] for n in ("ann", "bob", "cid"))
    assert per["rnd"]["counted"] < per["rnd"]["answers"]  # later answers kept, not counted
    assert per["ann"]["agreement"] > 0.9 and per["rnd"]["agreement"] < 0.7
    assert per["ann"]["estimated_accuracy"] > 0.8 > 0.6 > per["rnd"]["estimated_accuracy"]
    assert per["ann"]["median_seconds"] is not None
    assert 0 < report["agreement"]["fleiss_kappa"] < 1
    # The model flagged the same labeler from the same answers.
    assert loop.teacher is not None and set(loop.teacher.consensus.flagged) == {"rnd"}
    rows = await get_api(server, "/api/labels.jsonl")
    assert len(rows) == 3 * SAMPLES
    by_sample = {r["sample_id"]: r["aggregate"] for r in rows}
    assert all(r["aggregate"] == by_sample[r["sample_id"]] for r in rows)
    assert sum(1 for r in rows if not r["counted"]) == per["rnd"]["answers"] - per["rnd"]["counted"]
    right = sum(by_sample[i] == truth(_content_of(loop, i)) for i in range(SAMPLES))
    assert right >= SAMPLES - 1

    # A new server on the same store: every raw answer, the same aggregates and flags.
    await server.close()
    again = await make_server(stats_interval_seconds=0.05)
    assert (await get_api(again, "/api/quality"))[ROOM] == report
    assert await get_api(again, "/api/labels.jsonl") == rows


def _content_of(loop: FeedbackLoop, sample: int) -> dict[str, Any]:
    assert loop.teacher is not None
    x = loop.teacher.features[sample]
    return {"content": {f"x{i}": float(v) for i, v in enumerate(x)}}


async def test_quality_report_keeps_no_entry_for_rooms_without_labels(store: Store) -> None:
    # ?room= is whatever the caller writes: asking about a thousand rooms that do
    # not exist must not leave a thousand cached reports behind.
    from swergio_al.feedback.room_quality import _REPORTS, quality_report

    for i in range(50):
        assert await quality_report(store, f"feedback/nowhere-{i}") == {}
    assert not _REPORTS.get(store)


class ReadCounter:
    """The store, counting the label reads a quality report makes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        if name == "history":
            self.reads += 1
        return getattr(self.store, name)


async def _answer(store: Store, sample: int, labeler: str, answer: str) -> None:
    from tests.feedback.helpers import make_request

    await store.submit(make_request(sample, room=ROOM, overlap=2), max_pending=1000, now=0.0)
    task = await store.claim(ROOM, labeler, lease_seconds=60.0, now=0.0)
    assert task is not None
    await store.record_label(task.task_id, labeler, answer, 1.0, label_id=f"{labeler}-{sample}",
                             now=0.0)


async def test_a_busy_room_is_reported_again_only_now_and_then_and_once_for_all_askers(
        store: Store) -> None:
    import asyncio

    from swergio_al.feedback import room_quality

    counted = ReadCounter(store)
    now = [100.0]
    for sample in range(5):
        await _answer(store, sample, "ann", "a")
        await _answer(store, sample, "bob", "a" if sample else "b")
    first = await room_quality.quality_report(counted, ROOM, clock=lambda: now[0])  # type: ignore[arg-type]
    assert first[ROOM]["answers"] == 10 and counted.reads == 1

    # New labels a moment later: the last report still stands, nothing is read.
    await _answer(store, 5, "ann", "a")
    now[0] += room_quality.REFRESH_SECONDS / 2
    again = await room_quality.quality_report(counted, ROOM, clock=lambda: now[0])  # type: ignore[arg-type]
    assert again == first and counted.reads == 1

    # Later: rebuilt once, however many dashboards ask at the same time.
    now[0] += room_quality.REFRESH_SECONDS
    reports = await asyncio.gather(*(room_quality.quality_report(
        counted, ROOM, clock=lambda: now[0]) for _ in range(5)))  # type: ignore[arg-type]
    assert counted.reads == 2
    assert all(report[ROOM]["answers"] == 11 for report in reports)


class GatedReads(ReadCounter):
    """Label reads wait at a gate the test opens."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        import asyncio

        self.gate = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        real = super().__getattr__(name)
        if name != "history":
            return real

        async def history(*args: Any, **kwargs: Any) -> Any:
            await self.gate.wait()
            return await real(*args, **kwargs)

        return history


async def test_an_asker_who_goes_away_does_not_fail_the_others(store: Store) -> None:
    import asyncio

    from swergio_al.feedback import room_quality

    for sample in range(3):
        await _answer(store, sample, "ann", "a")
        await _answer(store, sample, "bob", "a")
    gated = GatedReads(store)
    first = asyncio.ensure_future(room_quality.quality_report(gated, ROOM))  # type: ignore[arg-type]
    second = asyncio.ensure_future(room_quality.quality_report(gated, ROOM))  # type: ignore[arg-type]
    for _ in range(500):  # both waiting on the one rebuild
        if gated.reads == 1 and ROOM in room_quality._BUILDING.get(gated, {}):  # type: ignore[call-overload]
            break
        await asyncio.sleep(0.01)
    first.cancel()  # a dashboard closed mid-request
    gated.gate.set()
    assert (await second)[ROOM]["answers"] == 6
    assert first.cancelled() and gated.reads == 1
