"""The trebuchet simulator component: a DATA/FORWARD of shots in, their DATA/GRADIENT out.

    python simulator.py --url ws://127.0.0.1:8080/ws

Listens in the `trebuchet` room. A forward pass carries `DATA.inputs`, a list
of [release angle (rad), counterweight (kg)]; the answer (same ROOT_ID, so the
sender can pair it with its forward pass) carries `DATA.distance` (m) and
`DATA.gradient`, d(distance)/d(angle, counterweight) per shot. The simulator
keeps no state between messages, so a repeated forward pass is harmless.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np
from physics import ANGLE_RANGE, MASS_RANGE, launch

from swergio_al.client import Component

ROOM = "trebuchet"


def build(url: str) -> Component:
    simulator = Component("simulator", url)

    @simulator.on("DATA/FORWARD", room=ROOM, response_type="DATA/GRADIENT")
    def forward(message: dict[str, Any]) -> dict[str, Any]:
        inputs = np.asarray(message["DATA"]["inputs"], dtype=float).reshape(-1, 2)
        low, high = np.array(ANGLE_RANGE + MASS_RANGE).reshape(2, 2).T
        clipped = np.clip(inputs, low, high)  # the machine's limits; no gradient beyond them
        distance, gradient = launch(clipped[:, 0], clipped[:, 1])
        gradient[clipped != inputs] = 0.0
        return {"DATA": {"distance": distance.tolist(), "gradient": gradient.tolist()}}

    simulator.on_connect(lambda: print("simulator ready", flush=True))
    return simulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    build(args.url).run_forever()


if __name__ == "__main__":
    main()
