"""The controller component: learns to aim the trebuchet from the gradients the simulator returns.

    python controller.py --url ws://127.0.0.1:8080/ws --seed 0

For each batch of targets (DATA/FORWARD in `targets`) it proposes inputs with
its network, sends them as a DATA/FORWARD to the `trebuchet` room and waits for
the DATA/GRADIENT with the same ROOT_ID. With loss = mean((distance - target)²)
it chains d(loss)/d(distance) · d(distance)/d(inputs) back into its weights.
It never sees the simulator's code. Batches marked MODEL_STATUS 2 (validate)
are only measured. DATA/CUSTOM `{"check": "gradients"}` compares the
simulator's gradients with its own finite differences, through the same room.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np
from network import Controller

from swergio_al.client import Component, run_until_stopped

TARGETS_ROOM = "targets"
TREBUCHET_ROOM = "trebuchet"
KPI_ROOM = "kpi"
TARGET_RANGE = (20.0, 120.0)  # m; what the target generator asks for
# The machine's limits as published with it (release angle in rad, counterweight in kg).
LOW = np.array([0.15, 100.0])
HIGH = np.array([1.35, 1000.0])
VALIDATE = 2
KPI_EVERY = 10
REPLY_WAIT = 1.0  # s before a forward pass is sent again (the simulator may be restarting)


class Aimer:
    def __init__(self, url: str, *, seed: int, learning_rate: float = 0.1,
                 decay_steps: int = 300) -> None:
        self.net = Controller(target_range=TARGET_RANGE, low=LOW, high=HIGH,
                              learning_rate=learning_rate, random_state=seed)
        self.base_rate = learning_rate
        self.decay_steps = decay_steps
        self.component = Component("controller", url)
        self.component.on("DATA/FORWARD", room=TARGETS_ROOM, response_type="DATA/CUSTOM")(
            self.aim)
        self.component.on("DATA/CUSTOM", room=TARGETS_ROOM)(self.check)
        # Joins the simulator's room. What reaches this handler is a second answer to a
        # forward pass sent again while the simulator restarted: already paired, so dropped.
        self.component.on("DATA/GRADIENT", room=TREBUCHET_ROOM)(lambda message: None)
        self.component.on_connect(lambda: print("controller ready", flush=True))
        self.rng = np.random.default_rng(seed)
        self.answered: tuple[Any, dict[str, Any]] | None = None  # last ROOT_ID and its answer

    # --8<-- [start:shoot]
    async def shoot(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass through the simulator: distances and d(distance)/d(inputs)."""
        reply = await self.component.request(
            {"TYPE": "DATA/FORWARD", "TO_ROOM": TREBUCHET_ROOM,
             "DATA": {"inputs": inputs.tolist()}},
            timeout=60, expect="DATA/GRADIENT", resend_after=REPLY_WAIT)
        return (np.asarray(reply["DATA"]["distance"], dtype=float),
                np.asarray(reply["DATA"]["gradient"], dtype=float).reshape(-1, 2))
    # --8<-- [end:shoot]

    async def aim(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.answered is not None and self.answered[0] == message.get("ROOT_ID"):
            return self.answered[1]  # sent again (its answer was lost): not trained on twice
        targets = np.asarray(message["DATA"]["targets"], dtype=float)
        inputs = self.net.forward(targets)
        distance, gradient = await self.shoot(inputs)
        miss = distance - targets
        if message.get("MODEL_STATUS") != VALIDATE:
            span = TARGET_RANGE[1] - TARGET_RANGE[0]
            d_distance = 2 * miss / (span ** 2 * len(targets))
            # A decaying step size: big steps to find the region, small ones to settle.
            progress = min(self.net.steps_ / self.decay_steps, 1.0)
            self.net.learning_rate = self.base_rate * 0.02 ** progress
            self.net.backward(d_distance[:, None] * gradient)
            if self.net.steps_ % KPI_EVERY == 0:
                await self.report(float(np.median(np.abs(miss))))
        answer = {"DATA": {"miss": miss.tolist(), "steps": self.net.steps_}}
        self.answered = (message.get("ROOT_ID"), answer)
        return answer

    async def report(self, median_miss: float) -> None:
        await self.component.send({"TYPE": "LOG/KPI", "TO_ROOM": KPI_ROOM, "DATA": {
            "model": "trebuchet-controller", "version": self.net.steps_,
            "labels": self.net.steps_, "score": median_miss, "metric": "median miss (m)",
            "time": time.time()}})

    async def check(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Central finite differences of the simulator against the gradients it sends."""
        if message["DATA"].get("check") != "gradients":
            return None
        n = int(message["DATA"].get("points", 8))
        points = LOW + (HIGH - LOW) * self.rng.uniform(0.1, 0.9, (n, 2))
        steps = np.array([1e-6, 1e-4])  # rad, kg: ~1e-6 of each input's scale
        shots = [points]
        for i in range(2):
            for sign in (1, -1):
                shots.append(points + sign * steps[i] * np.eye(2)[i])
        distance, gradient = await self.shoot(np.concatenate(shots))
        d = distance.reshape(5, n)
        analytic = gradient[:n]
        finite = np.stack([(d[1] - d[2]) / (2 * steps[0]), (d[3] - d[4]) / (2 * steps[1])],
                          axis=1)
        relative = np.abs(finite - analytic) / np.abs(analytic)
        return {"DATA": {"gradient_max_rel_error": float(relative.max()), "points": n}}


async def serve(url: str, *, seed: int) -> None:
    aimer = Aimer(url, seed=seed)
    await aimer.component.join(KPI_ROOM)  # only sent to; recorded now, joined on connect
    async with aimer.component:
        await aimer.component.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run_until_stopped(serve(args.url, seed=args.seed))


if __name__ == "__main__":
    main()
