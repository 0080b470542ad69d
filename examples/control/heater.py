"""The plant: a heater whose input acts with a delay, losing heat to the room (numpy only).

Only the plant component uses the dynamics; the model learns them from what
the plant reports. `python heater.py` prints the setpoint error a proportional
controller with an untuned gain reaches, the baseline the optimizer is measured against.
"""

from __future__ import annotations

import json
from collections import deque

import numpy as np

AMBIENT = 20.0  # °C
INPUT_RANGE = (0.0, 10.0)  # heater power, arbitrary units
SETPOINT = 60.0
START = 20.0


class Heater:
    """T[k+1] = T[k] + loss * (AMBIENT - T[k]) + gain * u[k - delay] + noise."""

    def __init__(self, *, loss: float = 0.1, gain: float = 0.5, delay: int = 2,
                 noise: float = 0.05, random_state: int | None = None) -> None:
        self.loss = loss
        self.gain = gain
        self.delay = delay
        self.noise = noise
        self.rng = np.random.default_rng(random_state)
        self.temperature = START
        self.pending = deque([0.0] * delay)  # inputs on their way to the element

    def step(self, power: float) -> float:
        """Apply `power` (clipped to INPUT_RANGE) for one step; the new temperature."""
        self.pending.append(float(np.clip(power, *INPUT_RANGE)))
        acting = self.pending.popleft()
        self.temperature += (self.loss * (AMBIENT - self.temperature) + self.gain * acting
                             + self.noise * self.rng.standard_normal())
        return self.temperature


def proportional_error(*, gain: float = 1.0, steps: int = 150, window: int = 20,
                       random_state: int = 0) -> float:
    """Mean |setpoint - T| over the last `window` steps under u = gain * (setpoint - T)."""
    plant = Heater(random_state=random_state)
    errors = []
    temperature = plant.temperature
    for _ in range(steps):
        temperature = plant.step(gain * (SETPOINT - temperature))
        errors.append(abs(SETPOINT - temperature))
    return float(np.mean(errors[-window:]))


if __name__ == "__main__":
    print(json.dumps({"proportional_gain": 1.0, "setpoint_error": proportional_error(),
                      "initial_error": abs(SETPOINT - START)}))
