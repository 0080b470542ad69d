"""Issue 9: SIGKILL the server five times under steady labeling; no label is lost or doubled.

Twenty Python labelers answer as fast as tasks come and a FeedbackLoop model
learns from every label. The server is killed at seeded random moments and
restarted on the same port and SQLite file; every client reconnects by itself.
At the end the labels the labelers saw acknowledged, the labels in the store
and the labels the model trained on must be one set (each trained on exactly
once). A label committed just before a kill whose ACK died with the server is
sent again by its labeler after the reconnect and acknowledged then: labels are
idempotent.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier

from swergio_al.feedback import Labeler
from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.learning import ActiveLearner
from swergio_al.protocol import DATA, Message
from tests.helpers import ServerProcess

ROOM = "feedback/crash"
CHOICE = {"type": "choice", "choices": [0, 1]}
LABELERS = 20
SAMPLES = 1500
KILLS = 5
SEED = 9


class Progress:
    """Counts ACKs across all labelers; lets the test wait for the next few."""

    def __init__(self) -> None:
        self.acks = 0
        self.changed = asyncio.Condition()

    async def bump(self) -> None:
        self.acks += 1
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, acks: int, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: self.acks >= acks)


class AckedLabeler(Labeler):
    """A Labeler that remembers the label id of every ACK it receives."""

    def __init__(self, *args: Any, progress: Progress, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.progress = progress
        self.label_ids: set[str] = set()

    async def _on_ack(self, message: Message) -> None:
        self.label_ids.add(message[DATA]["label_id"])
        await super()._on_ack(message)
        await self.progress.bump()


def truth(task: dict[str, Any]) -> int:
    content = task["content"]
    return int(content["x0"] + content["x1"] > 0)


def stored_label_ids(store: str) -> list[str]:
    """The labels in the store, read by `swergio-al export` (the store's own reader)."""
    out = subprocess.run([sys.executable, "-m", "swergio_al.cli", "export", "--store", store,
                          "--format", "jsonl"], capture_output=True, text=True, check=True,
                         timeout=60)
    return [json.loads(line)["label_id"] for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.timeout(120)
async def test_five_sigkills_lose_and_double_no_label(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    store = f"sqlite:///{tmp_path / 'crash.db'}"
    server = ServerProcess("--store", store, "--lease-seconds", "3",
                           log_path=tmp_path / "server.log")
    await asyncio.to_thread(server.start)
    progress = Progress()

    async def answer(task: dict[str, Any]) -> int:
        await asyncio.sleep(rng.uniform(0.02, 0.1))  # a (very fast) person
        return truth(task)

    labelers = [AckedLabeler(f"labeler-{i}", server.ws_url, answer, room=ROOM,
                             progress=progress, backoff_initial=0.05, backoff_max=0.5,
                             random_state=i)
                for i in range(LABELERS)]
    model = FeedbackLoop(
        ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1],
                      random_state=0),
        name="model", url=server.ws_url, answer=CHOICE, feedback_room=ROOM)
    data = np.random.default_rng(SEED).normal(size=(SAMPLES, 2))
    kill_moments = []
    try:
        await model.start()
        for i, x in enumerate(data):
            await model.ask(i, x)
        # The server answers HISTORY after everything sent before it: all requests are
        # stored before the kills begin (FeedbackLoop also asks again on reconnect).
        await model.catch_up()
        await asyncio.gather(*(labeler.start() for labeler in labelers))
        for _ in range(KILLS):
            # A random moment while labels flow: after some more ACKs, plus a random delay.
            await progress.wait_for(progress.acks + rng.randint(10, 40))
            await asyncio.sleep(rng.uniform(0.0, 0.2))
            kill_moments.append(progress.acks)
            server.kill()
            await asyncio.to_thread(server.start)
        # The loop notifies this condition after every batch it learns (its version
        # moves before `learned` does, so waiting on the version could miss the last).
        async with asyncio.timeout(60), model._updated:
            await model._updated.wait_for(lambda: len(model.learned) >= SAMPLES)
        await model.settled()
        # Labels whose ACK died with a server are sent again after the reconnect and
        # acknowledged then (labels are idempotent): wait for every labeler to be sure.
        await asyncio.gather(*(labeler.wait_confirmed(timeout=30) for labeler in labelers))
    finally:
        for labeler in labelers:
            await labeler.close()
        await model.stop()
        server.terminate()

    acked = set().union(*(labeler.label_ids for labeler in labelers))
    stored = stored_label_ids(store)
    print(f"\nkilled after {kill_moments} ACKs; {len(acked)} acked, {len(stored)} stored, "
          f"{len(model.learned)} learned, {model.learner.n_labels_} training rows")
    assert len(kill_moments) == KILLS and kill_moments[-1] < SAMPLES  # killed mid-stream
    assert len(stored) == len(set(stored)) == SAMPLES  # one label per sample, none twice
    assert set(stored) == model.learned  # the model learned from every stored label...
    assert model.learner.n_labels_ == len(model.learned)  # ...each exactly once
    assert acked == set(stored)  # every acknowledged label is stored, and only those
