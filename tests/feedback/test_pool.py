"""Pool mode against a real server with Python labelers: what it asks, when, and restarts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from swergio_al.feedback import Labeler
from swergio_al.feedback.pool import Pool, PoolLoop
from swergio_al.keys import STORE
from swergio_al.learning import ActiveLearner, representative
from swergio_al.protocol import Message
from tests.conftest import MakeServer
from tests.helpers import RawClient

ROOM = "feedback/pool"
CHOICE = {"type": "choice", "choices": ["a", "b"]}


def blobs(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)
    return X, ["ab"[int(v)] for v in y]


def make_pool(X: np.ndarray) -> Pool:
    ids = [f"s{i}" for i in range(len(X))]
    return Pool(ids=ids, inputs=X,
                render=lambda i: {"kind": "table", "content": {"x": float(X[i, 0]),
                                                               "y": float(X[i, 1])}})


def answers(truth: list[str], delay: float = 0.0) -> Any:
    async def answer(task: dict[str, Any]) -> str:
        if delay:
            await asyncio.sleep(delay)  # a person's think time
        return truth[int(task["sample_id"][1:])]
    return answer


class Recorded(PoolLoop):
    """Records, at every new ask, whether the sample was labeled or pending then."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offences: list[str] = []
        self.asked_ids: list[Any] = []
        self.kept: list[Any] = []  # what the server kept open as someone held it

    def _on_kept(self, message: Message) -> None:
        self.kept += message["DATA"].get("kept", [])
        super()._on_kept(message)

    async def ask(self, sample_id: Any, x: Any = None, **kwargs: Any) -> None:
        if self.labeled[self.pool.index[sample_id]]:
            self.offences.append(f"{sample_id} asked after it was labeled")
        if sample_id in self.pending:
            self.offences.append(f"{sample_id} asked while pending")
        self.asked_ids.append(sample_id)
        await super().ask(sample_id, x, **kwargs)


def learner() -> ActiveLearner:
    return ActiveLearner(LogisticRegression(), classes=["a", "b"], random_state=0)


async def test_never_asks_a_labeled_or_pending_sample_and_the_queue_never_runs_dry(
        make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.01)
    url = str(server.make_url("/ws"))
    X, truth = blobs(40, seed=1)
    loop = Recorded(learner(), make_pool(X), name="model", url=url, answer=CHOICE,
                    feedback_room=ROOM, seed=0)
    dry: list[dict[str, Any]] = []

    async def watch(watcher: RawClient) -> None:
        while True:
            stats = (await watcher.expect("FEEDBACK/STATS", timeout=60))["DATA"]
            if stats["labeled"] < len(X) and stats["queued"] + stats["in_flight"] == 0 \
                    and stats["labelers"] == 2:
                dry.append(stats)

    async with await RawClient.connect(url, "watcher", rooms=(ROOM,)) as watcher, loop, \
            Labeler("ann", url, answers(truth, 0.1), room=ROOM), \
            Labeler("bob", url, answers(truth, 0.1), room=ROOM):
        watching = asyncio.create_task(watch(watcher))
        try:
            async with asyncio.timeout(30):
                await loop.finished.wait()
            await loop.settled()
        finally:
            watching.cancel()
    assert loop.offences == []
    assert dry == [], dry[:3]
    assert loop.labeled.all() and loop.n_labels == len(X)
    assert loop.learner.n_labels_ == len(X)  # each label learned once


async def test_stops_at_exactly_the_budget(make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.01)
    url = str(server.make_url("/ws"))
    X, truth = blobs(60, seed=2)
    loop = PoolLoop(learner(), make_pool(X), name="model", url=url, answer=CHOICE,
                    feedback_room=ROOM, budget=9, seed=0)
    async with loop, Labeler("ann", url, answers(truth), room=ROOM) as ann, \
            Labeler("bob", url, answers(truth), room=ROOM) as bob:
        async with asyncio.timeout(30):
            await loop.finished.wait()
        await loop.settled()
        await ann.wait_confirmed()
        await bob.wait_confirmed()
        assert ann.acked + bob.acked == 9
        assert loop.n_labels == 9 and loop.learner.n_labels_ == 9
        assert loop.pending == {}
        stats = await server.app[STORE].stats(ROOM, now=time.time())
        assert stats.labeled == 9 and stats.queued == stats.in_flight == 0


async def test_a_replan_never_withdraws_what_a_person_is_answering(
        make_server: MakeServer) -> None:
    # Random scores: every plan after a label ranks the pending requests anew and
    # cancels most of them, the two each labeler holds (reading one) among them: none
    # stays for being young (keep_for=0), and the budget is far enough off for cancels
    # (none within the labels that may come in 3 s of it).
    server = await make_server(stats_interval_seconds=0.01)
    url = str(server.make_url("/ws"))
    X, truth = blobs(60, seed=3)
    shuffled = ActiveLearner(LogisticRegression(), classes=["a", "b"], strategy="random",
                             random_state=0)
    loop = Recorded(shuffled, make_pool(X), name="model", url=url, answer=CHOICE,
                    feedback_room=ROOM, budget=30, reserve=0, keep=1.0, keep_for=0,
                    seed=0)
    async with loop, Labeler("ann", url, answers(truth, 0.3), room=ROOM) as ann, \
            Labeler("bob", url, answers(truth, 0.3), room=ROOM) as bob:
        async with asyncio.timeout(30):
            await loop.finished.wait()
        await loop.settled()
        await ann.wait_confirmed()
        await bob.wait_confirmed()
        assert loop.kept, "no re-plan canceled a held task: the test proves nothing"
        assert ann.refused == bob.refused == 0
        assert ann.acked + bob.acked == 30
        assert loop.n_labels == 30 and loop.learner.n_labels_ == 30
        assert loop.offences == [] and loop.pending == {}
        stats = await server.app[STORE].stats(ROOM, now=time.time())
        assert stats.labeled == 30 and stats.queued == stats.in_flight == 0


async def test_a_restart_neither_asks_a_labeled_sample_nor_learns_a_label_twice(
        make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.01)
    url = str(server.make_url("/ws"))
    X, truth = blobs(50, seed=3)
    first = PoolLoop(learner(), make_pool(X), name="model", url=url, answer=CHOICE,
                     feedback_room=ROOM, budget=8, seed=0)
    async with first, Labeler("ann", url, answers(truth), room=ROOM) as ann:
        async with asyncio.timeout(30):
            await first.finished.wait()
        await first.settled()
        await ann.wait_confirmed()
    labeled_before = {first.pool.ids[i] for i in np.flatnonzero(first.labeled)}
    assert len(labeled_before) == 8
    second = Recorded(learner(), make_pool(X), name="model", url=url, answer=CHOICE,
                      feedback_room=ROOM, budget=16, seed=1)
    async with second, Labeler("ann", url, answers(truth), room=ROOM) as ann:
        assert second.n_labels == 8 and second.learner.n_labels_ == 8  # from the history
        async with asyncio.timeout(30):
            await second.finished.wait()
        await second.settled()
        await ann.wait_confirmed()
        assert ann.acked == 8
    assert second.offences == []
    assert not labeled_before & set(second.asked_ids)
    assert second.n_labels == 16 and second.learner.n_labels_ == 16
    assert len(second.learned) == 16


async def test_the_cold_start_spreads_before_the_model_can_score(
        make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.01)
    url = str(server.make_url("/ws"))
    # three tight, far apart clusters; the label is the cluster
    rng = np.random.default_rng(4)
    centers = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    X = np.concatenate([c + rng.normal(scale=0.5, size=(30, 2)) for c in centers])
    truth = ["a"] * 30 + ["b"] * 30 + ["c"] * 30
    loop = Recorded(ActiveLearner(LogisticRegression(), classes=["a", "b", "c"]),
                    make_pool(X), name="model", url=url, feedback_room=ROOM, seed=0,
                    answer={"type": "choice", "choices": ["a", "b", "c"]}, budget=3)
    async with loop, Labeler("ann", url, answers(truth), room=ROOM):
        async with asyncio.timeout(30):
            await loop.finished.wait()
    first_three = [int(s[1:]) // 30 for s in loop.asked_ids[:3]]
    assert sorted(first_three) == [0, 1, 2]


def test_representative_covers_the_clusters() -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([c + rng.normal(scale=0.1, size=(50, 2))
                        for c in ([0, 0], [10, 0], [0, 10], [10, 10])])
    central = representative(X, 3, rng, taken=[0])  # row 0 is in cluster 0
    assert sorted({int(p) // 50 for p in central}) == [1, 2, 3]  # the clusters not taken
    centers = X.reshape(4, 50, 2).mean(axis=1)
    for p in central:  # typical rows, not outliers
        assert np.linalg.norm(X[p] - centers[int(p) // 50]) < 0.2
