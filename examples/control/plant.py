"""The plant component: a heater that others may only drive and watch through rooms.

    python plant.py --url ws://127.0.0.1:8080/ws --seed 0

In `plant`, DATA/CUSTOM `{"power": u}` applies u for one step and is answered
with the new temperature (`{"power": null}` only reads it). Every step is also
published to `observations` as a DATA/FORWARD `{step, temperature, power,
next_temperature}`, which is all the model ever learns from. A request sent
again (same ROOT_ID) gets the same answer and does not step twice.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from heater import Heater

from swergio_al.client import Component, run_until_stopped

PLANT_ROOM = "plant"
OBSERVATIONS_ROOM = "observations"


class Plant:
    def __init__(self, url: str, *, seed: int) -> None:
        self.heater = Heater(random_state=seed)
        self.step = 0
        self.last: tuple[Any, dict[str, Any]] | None = None  # ROOT_ID, answer
        self.component = Component("plant", url)
        self.component.on("DATA/CUSTOM", room=PLANT_ROOM)(self.drive)

    async def drive(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.last is not None and self.last[0] == message.get("ROOT_ID"):
            return self.last[1]
        power = message["DATA"].get("power")
        before = self.heater.temperature
        if power is not None:
            after = self.heater.step(float(power))
            await self.component.send({"TYPE": "DATA/FORWARD", "TO_ROOM": OBSERVATIONS_ROOM,
                                       "DATA": {"step": self.step, "temperature": before,
                                                "power": float(power),
                                                "next_temperature": after}})
            self.step += 1
        answer = {"DATA": {"temperature": self.heater.temperature, "step": self.step}}
        self.last = (message.get("ROOT_ID"), answer)
        return answer


async def serve(url: str, *, seed: int) -> None:
    plant = Plant(url, seed=seed)
    await plant.component.join(OBSERVATIONS_ROOM)  # only sent to; recorded now, joined on connect
    async with plant.component:
        print("plant ready", flush=True)
        await plant.component.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run_until_stopped(serve(args.url, seed=args.seed))


if __name__ == "__main__":
    main()
