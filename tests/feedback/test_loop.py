"""The model-side FeedbackLoop against a real server with Python labelers."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from sklearn.linear_model import SGDClassifier

from swergio_al.feedback import Labeler
from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.feedback.seed_labels import load_seed_labels
from swergio_al.learning import ActiveLearner
from tests.conftest import MakeServer
from tests.helpers import RawClient

ROOM = "feedback/loop"
CHOICE = {"type": "choice", "choices": [0, 1]}


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 1.5, -1.5)
    return X, y


def truth(task: dict[str, Any]) -> int:
    """The oracle reads the features the model sent, as a person reads the table."""
    content = task["content"]
    return int(content["x0"] + content["x1"] > 0)


def learner() -> ActiveLearner:
    return ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1],
                         random_state=0)


async def test_every_label_is_learned_once_and_reported(make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.02)
    url = str(server.make_url("/ws"))
    X, _ = blobs(12, seed=1)
    X_val, y_val = blobs(60, seed=2)
    loop = FeedbackLoop(learner(), name="model", url=url, answer=CHOICE, feedback_room=ROOM,
                        kpi_room="kpi", validation=(X_val, y_val))
    async with await RawClient.connect(url, "watcher", rooms=("kpi",)) as watcher, \
            loop, Labeler("ann", url, truth, room=ROOM) as ann:
        for i, x in enumerate(X):
            await loop.ask(f"s{i}", x)
        await loop.wait_for_version(1, timeout=10)
        kpi = await watcher.expect("LOG/KPI")
        assert kpi["SENT_BY"] == "model" and kpi["DATA"]["version"] >= 1
        async with asyncio.timeout(10):
            while len(loop.learned) < len(X):
                await loop.wait_for_version(loop.version + 1)
        await ann.wait_acked(len(X), timeout=5)
        assert loop.learner.n_labels_ == len(X)  # none twice
        assert loop.pending == {}
        assert loop.kpis[-1]["score"] is not None and loop.kpis[-1]["score"] > 0.8
        # Test-then-train: labels are scored on the prediction made before learning them.
        last = loop.kpis[-1]
        assert last["prequential_metric"] == "accuracy" and last["score_metric"] == "accuracy"
        assert 1 <= last["prequential_labels"] <= len(X)
        assert 0.0 <= last["prequential"] <= 1.0


async def test_restarted_model_catches_up_from_history(make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.02)
    url = str(server.make_url("/ws"))
    X, _ = blobs(6, seed=3)
    first = FeedbackLoop(learner(), name="model", url=url, answer=CHOICE, feedback_room=ROOM)
    async with first, Labeler("ann", url, truth, room=ROOM) as ann:
        for i, x in enumerate(X):
            await first.ask(i, x)
        await ann.wait_acked(len(X), timeout=10)
        async with asyncio.timeout(10):
            while len(first.learned) < len(X):
                await first.wait_for_version(first.version + 1)
    second = FeedbackLoop(learner(), name="model", url=url, answer=CHOICE, feedback_room=ROOM)
    async with second:
        assert second.learned == first.learned
        assert second.learner.n_labels_ == len(X)
        again = await second.catch_up()  # asking twice adds nothing
        assert again == len(X) and second.learner.n_labels_ == len(X)


async def test_stream_input_room_predictions_and_budget(make_server: MakeServer) -> None:
    server = await make_server()
    url = str(server.make_url("/ws"))
    X, _ = blobs(40, seed=4)
    budgeted = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1],
                             threshold=0.5, random_state=0)
    loop = FeedbackLoop(budgeted, name="model", url=url, answer=CHOICE, feedback_room=ROOM,
                        input_room="samples", output_room="verdicts")
    async with loop, await RawClient.connect(url, "source", rooms=("samples", "verdicts")) as src:
        samples = [{"sample_id": i, "x": x.tolist()} for i, x in enumerate(X)]
        await src.send({"TYPE": "DATA/FORWARD", "TO_ROOM": "samples",
                        "DATA": {"samples": samples}})
        reply = await src.expect("DATA/FORWARD")
        assert reply["TO_ROOM"] == "verdicts"
        assert [p["sample_id"] for p in reply["DATA"]["predictions"]] == list(range(40))
        # Before any label everything is maximally uncertain: all pass the threshold.
        assert len(loop.pending) == 40


def test_seed_labels_from_csv_and_jsonl(tmp_path: Any) -> None:
    (tmp_path / "seed.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    (tmp_path / "seed.jsonl").write_text('{"x": [1, 2], "y": "cat"}\n\n{"x": [3, 4], "y": "dog"}\n')
    X, y = load_seed_labels(tmp_path / "seed.csv")
    assert X.tolist() == [[1, 2], [3, 4]] and y.tolist() == [0, 1]
    X, y = load_seed_labels(tmp_path / "seed.jsonl")
    assert X.shape == (2, 2) and y.tolist() == ["cat", "dog"]
    (tmp_path / "bad.jsonl").write_text('{"x": [1]}\n')
    try:
        load_seed_labels(tmp_path / "bad.jsonl")
    except ValueError as exc:
        assert "bad.jsonl:1" in str(exc)
    else:
        raise AssertionError("a line without y must be refused")


async def test_a_restart_is_a_new_run_that_tests_only_new_labels(
        make_server: MakeServer) -> None:
    """Restarted on the same store: the catch-up report is version 1 of a new run with no
    prequential figure (the replayed labels were tested when first learned), and the
    first label a model gets has no prediction to test (the learner only had a
    placeholder: its first declared class)."""
    server = await make_server(stats_interval_seconds=0.02)
    X, _ = blobs(7, seed=5)
    first = FeedbackLoop(learner(), name="model", url=str(server.make_url("/ws")),
                         answer=CHOICE, feedback_room=ROOM)
    async with first, Labeler("ann", str(server.make_url("/ws")), truth, room=ROOM) as ann:
        for i, x in enumerate(X[:6]):
            await first.ask(i, x)
        await ann.wait_acked(6, timeout=10)
        await first.wait_learned(6)
    assert first.kpis[0]["prequential"] is None and first.kpis[0]["prequential_labels"] == 0
    assert first.kpis[-1]["prequential_labels"] == 6 - first.kpis[0]["new_labels"]
    assert {k["run"] for k in first.kpis} == {first.run}
    await server.close()

    server = await make_server(stats_interval_seconds=0.02)  # the same SQLite store
    second = FeedbackLoop(learner(), name="model", url=str(server.make_url("/ws")),
                          answer=CHOICE, feedback_room=ROOM)
    async with second, Labeler("ann", str(server.make_url("/ws")), truth, room=ROOM) as ann:
        assert second.run is not None and first.run is not None and second.run > first.run
        caught_up = second.kpis[-1]
        assert sum(k["replayed"] for k in second.kpis) == 6
        assert caught_up["labels"] == 6 and caught_up["run"] == second.run
        assert caught_up["prequential"] is None and caught_up["prequential_labels"] == 0
        await second.ask(6, X[6])
        await second.wait_learned(7)
        live = second.kpis[-1]
        assert live["replayed"] == 0 and live["labels"] == 7
        assert live["version"] == caught_up["version"] + 1 and live["run"] == second.run
        assert live["prequential_labels"] == 1  # the new label only
