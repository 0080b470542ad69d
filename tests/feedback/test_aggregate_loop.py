"""The FeedbackLoop learns each sample's aggregate answer once, and again only when it flips."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import SGDClassifier

from swergio_al.feedback import Labeler
from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.learning import ActiveLearner
from tests.conftest import MakeServer

ROOM = "feedback/aggregate"
CHOICE = {"type": "choice", "choices": [0, 1]}


class CountingLearner(ActiveLearner):
    """Records what it was taught: (method, sample count, labels, weights)."""

    def __init__(self) -> None:
        super().__init__(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1],
                         random_state=0)
        self.calls: list[tuple[str, int, list[Any], list[float] | None]] = []

    def teach(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        self.calls.append(("teach", len(y), list(y), _listed(sample_weight)))
        return super().teach(X, y, sample_weight=sample_weight)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        self.calls.append(("fit", len(y), list(y), _listed(sample_weight)))
        return super().fit(X, y, sample_weight=sample_weight)


def _listed(weights: Any) -> list[float] | None:
    return None if weights is None else [float(w) for w in weights]


async def answer_once(url: str, name: str, value: int) -> None:
    async with Labeler(name, url, lambda task: value, room=ROOM) as labeler:
        await labeler.wait_acked(1, timeout=10)


async def test_a_flipped_aggregate_is_retaught_once_never_counted_twice(
        make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.05)
    url = str(server.make_url("/ws"))
    model = CountingLearner()
    loop = FeedbackLoop(model, name="model", url=url, answer=CHOICE, feedback_room=ROOM,
                        overlap=3, aggregate="majority")
    async with loop:
        await loop.ask("a", np.array([1.0, 1.0]))
        await loop.ask("b", np.array([-1.0, -1.0]))
        # ann answers 1 to "a", 0 to "b"; bob 0 to both (a tie goes to the first choice,
        # 0: "a" flips); cid 0 to both (nothing flips again).
        for number, (name, value) in enumerate([("ann", 1), ("bob", 0), ("cid", 0)], 1):
            def answer(task: dict[str, Any], v: int = value) -> int:
                return v if task["sample_id"] == "a" else 0

            async with Labeler(name, url, answer, room=ROOM) as labeler:
                await labeler.wait_acked(2, timeout=10)
            await loop.wait_learned(2 * number)
        assert loop.teacher is not None
        assert loop.teacher.flips == 1
        assert loop.teacher.taught == {"a": 0, "b": 0}
        kinds = [(method, n, labels) for method, n, labels, _ in model.calls]
        # First both samples once (ann's answers), then one full fit when "a" flipped,
        # then nothing more (cid changes no aggregate).
        assert kinds[0][0] == "teach" and sum(n for m, n, _ in kinds if m == "teach") == 2
        assert [k for k in kinds if k[0] == "fit"] == [("fit", 2, [0, 0])]
        assert kinds[-1][0] == "fit"  # cid taught nothing
        assert model.n_labels_ == 2  # each sample counted once
        weights = next(w for m, _, _, w in model.calls if m == "fit")
        assert weights == [0.5, 1.0]  # the confidence: "a" 1 vs 1, "b" 2 of 2


async def test_overlap_one_without_aggregation_learns_every_raw_answer(
        make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.05)
    url = str(server.make_url("/ws"))
    model = CountingLearner()
    loop = FeedbackLoop(model, name="model", url=url, answer=CHOICE, feedback_room=ROOM)
    async with loop:
        assert loop.teacher is None
        await loop.ask("a", np.array([1.0, 1.0]))
        await answer_once(url, "ann", 1)
        await loop.wait_learned(1)
    assert model.calls == [("teach", 1, [1], None)]
