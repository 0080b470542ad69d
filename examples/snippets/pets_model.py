"""A model that asks people: docs/getting-started.md. Run `swergio-al serve` first."""

import asyncio
import os

import numpy as np
from sklearn.linear_model import SGDClassifier

from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.learning import ActiveLearner

URL = os.environ.get("SWERGIO_AL_URL", "ws://127.0.0.1:8080/ws")

learner = ActiveLearner(SGDClassifier(loss="log_loss"), strategy="margin",
                        classes=["cat", "dog"], random_state=0)
loop = FeedbackLoop(learner, name="pets-model", url=URL,
                    feedback_room="feedback/pets", kpi_room="kpi",
                    answer={"type": "choice", "choices": ["cat", "dog"]},
                    question="Cat or dog?",
                    render=lambda sample_id, x: {"kind": "table",
                                                 "content": {"whiskers": x[0], "barks": x[1]}})


async def main() -> None:
    async with loop:                                  # registers, catches up on old labels
        pool = np.random.default_rng(0).random((200, 2))
        indices, _ = learner.query(pool, n=10, diversity=0.3)
        for i in indices:                             # the 10 it is least sure of
            await loop.ask(int(i), pool[i])
        await loop.wait_closed()                      # learns from every label as it comes


if __name__ == "__main__":
    asyncio.run(main())
