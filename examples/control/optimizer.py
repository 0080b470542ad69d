"""The optimizer: drives the plant to a setpoint by gradient steps on its input through the model.

    python optimizer.py --url ws://127.0.0.1:8080/ws --steps 150 --seed 0

For the first `--explore` steps it sends random power levels (so the model has
something to learn from). Then, every step, it starts from the temperature the
plant just reported (the live feedback), asks the model (DATA/FORWARD in
`model`, answered by DATA/GRADIENT with the same ROOT_ID) for the temperature
HORIZON steps ahead at a candidate power and its derivative, and takes a few
Gauss-Newton steps on loss = (prediction - setpoint)² before applying the
power. Prints one JSON line at the end: the setpoint error over the last 20 steps.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

import numpy as np

from swergio_al.client import Component, run_until_stopped

PLANT_ROOM = "plant"
MODEL_ROOM = "model"
KPI_ROOM = "kpi"
SETPOINT = 60.0
POWER_RANGE = (0.0, 10.0)  # the plant's published input limits
HORIZON = 8  # steps ahead the prediction looks: beyond the plant's (unknown) delay
ITERATIONS = 3  # gradient steps on the power per plant step
DAMPING = 1e-3  # keeps a step finite while the model still thinks power does nothing
WINDOW = 20
KPI_EVERY = 10
REPLY_WAIT = 2.0


async def run(url: str, *, steps: int, explore: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    component = Component("optimizer", url)
    for room in (PLANT_ROOM, MODEL_ROOM, KPI_ROOM):
        await component.join(room)

    async def ask(room: str, kind: str, data: dict[str, Any], expect: str) -> dict[str, Any]:
        reply = await component.request({"TYPE": kind, "TO_ROOM": room, "DATA": data},
                                        timeout=120, expect=expect, resend_after=REPLY_WAIT)
        return dict(reply["DATA"])

    async def drive(power: float | None) -> float:
        reply = await ask(PLANT_ROOM, "DATA/CUSTOM", {"power": power}, "DATA/CUSTOM")
        return float(reply["temperature"])

    errors: list[float] = []
    past: list[float] = []  # powers applied, newest first
    power = 0.0
    async with component:
        started = time.perf_counter()
        temperature = await drive(None)
        initial_error = abs(SETPOINT - temperature)
        for step in range(steps):
            if step < explore:
                power = float(rng.uniform(*POWER_RANGE))
            else:
                for _ in range(ITERATIONS):
                    what_if = await ask(MODEL_ROOM, "DATA/FORWARD", {
                        "temperature": temperature, "past_inputs": past, "power": power,
                        "horizon": HORIZON}, "DATA/GRADIENT")
                    miss, slope = what_if["prediction"] - SETPOINT, what_if["gradient"]
                    # d(loss)/d(power) = 2 miss slope, scaled by the curvature 2 slope²:
                    # a Gauss-Newton step, damped while the slope is still unknown.
                    power = float(np.clip(power - miss * slope / (slope ** 2 + DAMPING),
                                          *POWER_RANGE))
            temperature = await drive(power)
            past = [power, *past][:8]
            errors.append(abs(SETPOINT - temperature))
            if (step + 1) % KPI_EVERY == 0:
                await component.send({"TYPE": "LOG/KPI", "TO_ROOM": KPI_ROOM, "DATA": {
                    "model": "heater-optimizer", "version": step + 1, "labels": step + 1,
                    "score": float(np.mean(errors[-KPI_EVERY:])),
                    "metric": "setpoint error (°C)", "time": time.time()}})
        final_error = float(np.mean(errors[-WINDOW:]))
    return {"example": "control", "setpoint": SETPOINT, "initial_error": initial_error,
            "final_error": round(final_error, 4),
            "error_pct_of_initial": round(100 * final_error / initial_error, 3),
            "steps": steps, "seconds": round(time.perf_counter() - started, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--explore", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 <= args.explore < args.steps - WINDOW:
        parser.error(f"need 0 <= --explore < --steps - {WINDOW}")
    logging.basicConfig(level=logging.WARNING)
    summary = run_until_stopped(run(args.url, steps=args.steps, explore=args.explore,
                                    seed=args.seed))
    if summary is None:
        print("stopped before the end", file=sys.stderr)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
