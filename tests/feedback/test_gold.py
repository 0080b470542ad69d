"""Gold questions and adaptive overlap through a served app (swergio_al/feedback/gold.py)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier

from swergio_al.feedback import Labeler
from swergio_al.feedback.adaptive import OverlapPolicy
from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.learning import ActiveLearner
from tests.conftest import MakeServer
from tests.feedback.helpers import (
    ROOM,
    Peer,
    get_api,
    label_message,
    labeler,
    request_message,
    requester,
)
from tests.helpers import free_port

CHOICE = {"type": "choice", "choices": ["cat", "dog"]}
GOLD = {"g0": "cat", "g1": "dog", "g2": "cat"}


class Recorder(ActiveLearner):
    """Keeps every row it was taught."""

    def __init__(self) -> None:
        super().__init__(SGDClassifier(loss="log_loss", random_state=0), classes=["cat", "dog"],
                         random_state=0)
        self.rows: list[list[float]] = []

    def teach(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        self.rows.extend(np.asarray(X).tolist())
        return super().teach(X, y, sample_weight=sample_weight)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        self.rows.extend(np.asarray(X).tolist())
        return super().fit(X, y, sample_weight=sample_weight)


def right(task: dict[str, Any]) -> str:
    return "cat" if task["content"]["x0"] > 0 else "dog"


def wrong(task: dict[str, Any]) -> str:
    return "dog" if right(task) == "cat" else "cat"


async def test_gold_measures_labelers_once_each_and_never_reaches_the_model(
        make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.05, gold_rate=0.5)
    url = str(server.make_url("/ws"))
    learner = Recorder()
    loop = FeedbackLoop(learner, name="model", url=url, answer=CHOICE, feedback_room=ROOM,
                        overlap=2, aggregate="dawid_skene")
    async with loop:
        for sample, answer in GOLD.items():  # gold features stand out: 100 +- 1
            await loop.ask_gold(sample, [100.0 if answer == "cat" else -100.0, 1.0], answer)
        rng = np.random.default_rng(0)
        for i in range(8):
            await loop.ask(i, rng.normal(size=2))
        async with Labeler("ann", url, right, room=ROOM) as ann, \
                Labeler("liar", url, wrong, room=ROOM) as liar:
            await loop.wait_learned(16, timeout=20)  # 8 samples x overlap 2
            await ann.wait_acked(8 + 3, timeout=10)  # and every gold question, once each
            await liar.wait_acked(8 + 3, timeout=10)
        assert all(abs(row[0]) < 50 for row in learner.rows)  # no gold row was taught
        assert loop.teacher is not None and not set(GOLD) & set(loop.teacher.features)
        assert len(loop.learned) == 16

    rows = await get_api(server, "/api/labels.jsonl")
    gold = [(r["labeler"], r["sample_id"]) for r in rows if r["room"] == f"{ROOM}/.gold"]
    assert sorted(gold) == sorted((name, s) for name in ("ann", "liar") for s in GOLD)
    per = (await get_api(server, "/api/quality"))[ROOM]["per_labeler"]
    assert per["ann"]["gold_accuracy"] == 1.0 and per["liar"]["gold_accuracy"] == 0.0
    assert per["ann"]["answers"] == 8  # gold answers are not room answers

    # A restarted model catches up on its labels: still none of the gold ones.
    again = FeedbackLoop(Recorder(), name="model", url=url, answer=CHOICE,
                         feedback_room=ROOM, overlap=2)
    async with again:
        assert len(again.learned) == 16
        assert again.teacher is not None and not set(GOLD) & set(again.teacher.features)


async def test_gold_rooms_are_the_services_own(make_server: MakeServer) -> None:
    server = await make_server()
    url = str(server.make_url("/ws"))
    async with await requester(url, room=f"{ROOM}/.gold") as model, \
            await labeler(url, "ann", room=f"{ROOM}/.gold") as ann:
        await model.send(request_message("x", room=f"{ROOM}/.gold"))
        assert "gold rooms" in (await model.error("forbidden"))["MESSAGE"]
        await model.join(ROOM)
        await model.send(request_message("y", gold="cat"))  # the way in, checked
        await model.none_of("ERROR", 0.2)
        await model.send(request_message("z", gold="cow"))
        assert "gold: answer must be one of" in (await model.error("bad_field"))["MESSAGE"]
        await ann.none_of("FEEDBACK/TASK", 0.2)  # joining a gold room brings no work


async def answer_tasks(peer: Peer, answers: dict[Any, str], count: int) -> list[Any]:
    """Answer `count` tasks as `answers` says; returns the sample ids in the order seen."""
    seen = []
    for _ in range(count):
        task = (await peer.next("FEEDBACK/TASK"))["DATA"]
        seen.append(task["sample_id"])
        await peer.send(label_message(task["task_id"], answers[task["sample_id"]]))
        await peer.next("FEEDBACK/ACK")
    return seen


async def test_adaptive_overlap_asks_again_only_where_it_matters(
        make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.05, gold_rate=0.0)
    url = str(server.make_url("/ws"))
    warm_up = {f"w{i}": "cat" if i % 2 else "dog" for i in range(6)}
    async with await Peer.connect(url, "model", room=ROOM) as model:
        # Three labelers who agree on six samples: each is estimated well above 0.8.
        for sample in warm_up:
            await model.send(request_message(sample, overlap=3))
        for name in ("ann", "bob", "cid"):
            async with await labeler(url, name) as peer:
                await answer_tasks(peer, warm_up, len(warm_up))
        # Adaptive, up to 3: "agree" (ann = the model: one answer is enough),
        # "split" (ann differs from the model, bob from ann: three),
        # "confirm" (ann differs from the model, bob agrees with ann: two).
        predictions = {"agree": "cat", "split": "dog", "confirm": "dog"}
        for priority, (sample, prediction) in enumerate(predictions.items()):
            await model.send(request_message(sample, priority=3 - priority, overlap=3,
                                              adaptive=True, prediction=prediction))
        async with await labeler(url, "ann") as ann:
            assert await answer_tasks(ann, {"agree": "cat", "split": "cat",
                                            "confirm": "cat"}, 3) == list(predictions)
        async with await labeler(url, "bob") as bob:
            assert sorted(await answer_tasks(bob, {"split": "dog", "confirm": "cat"}, 2)) == \
                ["confirm", "split"]
            await bob.none_of("FEEDBACK/TASK", 0.3)  # "agree" was never asked again
        async with await labeler(url, "cid") as cid:
            assert await answer_tasks(cid, {"split": "cat"}, 1) == ["split"]
            await cid.none_of("FEEDBACK/TASK", 0.3)  # 3 is the limit
    rows = await get_api(server, "/api/labels.jsonl")
    counts = {s: sum(1 for r in rows if r["sample_id"] == s) for s in predictions}
    assert counts == {"agree": 1, "split": 3, "confirm": 2}


@pytest.mark.parametrize(("answers", "prediction", "expected"), [
    ([], None, True),
    ([("a", "cat")], "cat", False),  # trusted and the model agrees
    ([("a", "cat")], "dog", True),  # the model disagrees
    ([("new", "cat")], "cat", True),  # nothing known about them
    ([("a", "cat"), ("b", "dog")], "cat", True),  # the two disagree
    ([("a", "cat"), ("b", "cat")], "dog", False),  # 0.9 and 0.9 agree: 0.988
    ([("c", "cat"), ("c2", "cat")], "dog", True),  # 0.6 and 0.6 agree: 0.69
    ([("a", "cat"), ("b", "dog"), ("c", "cat")], "cat", False),  # the limit
])
def test_overlap_policy(answers: list[tuple[str, str]], prediction: str | None,
                        expected: bool) -> None:
    accuracy = {"a": 0.9, "b": 0.9, "c": 0.6, "c2": 0.6}
    assert OverlapPolicy().needs_another(answers, limit=3, prediction=prediction,
                                         choices=["cat", "dog"], accuracy=accuracy) is expected


async def test_serve_refuses_a_gold_rate_outside_0_to_1() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "swergio_al.cli", "serve", "--port", str(free_port()),
        env={**os.environ, "SWERGIO_AL_GOLD_RATE": "1.5"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 1 and out == b""
    assert err.decode().splitlines() == [
        "swergio-al serve: SWERGIO_AL_GOLD_RATE=1.5: the share of gold questions must be "
        "within 0..1"]


def test_the_models_prediction_counts_as_a_voter_once_its_accuracy_is_known() -> None:
    weak = [("c", "cat"), ("c2", "cat")]  # 0.6 and 0.6 agree: 0.69 alone
    accuracy = {"c": 0.6, "c2": 0.6}
    policy = OverlapPolicy()
    ask = {"limit": 3, "choices": ["cat", "dog"], "accuracy": accuracy}
    assert policy.needs_another(weak, prediction="cat", **ask)  # type: ignore[arg-type]
    assert not policy.needs_another(weak, prediction="cat", model_accuracy=0.9,
                                    **ask)  # type: ignore[arg-type]
    assert policy.needs_another(weak, prediction="dog", model_accuracy=0.9,
                                **ask)  # type: ignore[arg-type]
