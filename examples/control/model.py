"""The model component: learns the plant from the observations it publishes, answers what-ifs.

    python model.py --url ws://127.0.0.1:8080/ws

Learns from every DATA/FORWARD in `observations` (recursive least squares, see
plant_model.py). In `model`, a DATA/FORWARD `{temperature, past_inputs, power,
horizon}` is answered with a DATA/GRADIENT (same ROOT_ID) carrying the
predicted temperature `horizon` steps ahead and its derivative with respect to
the power. Publishes its one-step prediction error as LOG/KPI.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np
from plant_model import LAGS, LinearPlantModel

from swergio_al.client import Component, run_until_stopped

OBSERVATIONS_ROOM = "observations"
MODEL_ROOM = "model"
KPI_ROOM = "kpi"
KPI_EVERY = 10


class Model:
    def __init__(self, url: str) -> None:
        self.model = LinearPlantModel()
        self.inputs: list[float] = []  # newest first
        self.errors: list[float] = []
        self.component = Component("model", url)
        self.component.on("DATA/FORWARD", room=OBSERVATIONS_ROOM)(self.observe)
        self.component.on("DATA/FORWARD", room=MODEL_ROOM, response_type="DATA/GRADIENT")(
            self.predict)

    async def observe(self, message: dict[str, Any]) -> None:
        data = message["DATA"]
        self.inputs = [float(data["power"]), *self.inputs][:LAGS]
        error = self.model.learn(float(data["temperature"]), self.inputs,
                                 float(data["next_temperature"]))
        self.errors.append(abs(error))
        if self.model.samples_ % KPI_EVERY == 0:
            await self.component.send({"TYPE": "LOG/KPI", "TO_ROOM": KPI_ROOM, "DATA": {
                "model": "heater-model", "version": self.model.samples_,
                "labels": self.model.samples_, "score": float(np.mean(self.errors[-KPI_EVERY:])),
                "metric": "one-step prediction error (°C)", "time": time.time()}})

    def predict(self, message: dict[str, Any]) -> dict[str, Any]:
        data = message["DATA"]
        prediction, gradient = self.model.rollout(
            float(data["temperature"]), [float(u) for u in data["past_inputs"]],
            float(data["power"]), int(data["horizon"]))
        return {"DATA": {"prediction": prediction, "gradient": gradient}}


async def serve(url: str) -> None:
    model = Model(url)
    await model.component.join(KPI_ROOM)  # only sent to; recorded now, joined on connect
    async with model.component:
        print("model ready", flush=True)
        await model.component.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run_until_stopped(serve(args.url))


if __name__ == "__main__":
    main()
