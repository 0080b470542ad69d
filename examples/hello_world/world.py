"""The world: says hello in galactic_chat and keeps talking until N answers came back.

    python examples/hello_world/world.py --url ws://127.0.0.1:8080/ws --exchanges 10
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from swergio_al.client import Component, RefusedError

ROOM = "galactic_chat"


class World(Component):
    def __init__(self, url: str, *, exchanges: int = 10) -> None:
        super().__init__("world", url)
        self.exchanges = exchanges
        self.answers = 0
        self.on("DATA/TEXT", room=ROOM)(self.hear)

    async def greet(self, wait_for_universe: float = 30.0) -> None:
        """Say the first hello once the universe is listening (a hello to nobody is lost)."""
        async with asyncio.timeout(wait_for_universe):
            while True:
                try:
                    await self.request({"TYPE": "DATA/CUSTOM", "TO": "universe"}, timeout=5)
                    break
                except RefusedError:  # not online yet
                    await asyncio.sleep(0.2)
        await self.say(1)

    async def say(self, number: int) -> None:
        text = f"hello #{number} from the world"
        print(f"world    -> {text}", flush=True)
        await self.send({"TYPE": "DATA/TEXT", "TO_ROOM": ROOM, "DATA": text})

    async def hear(self, message: dict[str, Any]) -> None:
        self.answers += 1
        print(f"world    <- {message['DATA']}  [{self.answers}/{self.exchanges}]", flush=True)
        if self.answers < self.exchanges:
            await self.say(self.answers + 1)
        else:
            await self.close()


async def talk(url: str, exchanges: int) -> int:
    async with World(url, exchanges=exchanges) as world:
        await world.greet()
        await world.wait_closed()
    return world.answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--exchanges", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(talk(args.url, args.exchanges))


if __name__ == "__main__":
    main()
