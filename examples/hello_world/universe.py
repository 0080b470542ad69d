"""The universe: answers every hello said in galactic_chat, then leaves after N answers.

    python examples/hello_world/universe.py --url ws://127.0.0.1:8080/ws --exchanges 10
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from swergio_al.client import Component

ROOM = "galactic_chat"


class Universe(Component):
    def __init__(self, url: str, *, exchanges: int = 10) -> None:
        super().__init__("universe", url)
        self.exchanges = exchanges
        self.answered = 0
        self.on("DATA/TEXT", room=ROOM)(self.answer)
        self.on("DATA/CUSTOM")(self.here)  # direct presence check from the world

    def here(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"DATA": "listening"}  # goes back TO the sender, with its ROOT_ID

    async def answer(self, message: dict[str, Any]) -> dict[str, Any] | None:
        self.answered += 1
        reply = {"DATA": f"hello {message['SENT_BY']}, universe here ({self.answered})"}
        print(f"universe -> {reply['DATA']}", flush=True)
        if self.answered < self.exchanges:
            return reply  # sent back into the room the hello came from
        # The last word: send it ourselves, because a closed component sends no return value.
        await self.send({"TYPE": "DATA/TEXT", "TO_ROOM": ROOM, **reply})
        await self.close()
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--exchanges", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    Universe(args.url, exchanges=args.exchanges).run_forever()


if __name__ == "__main__":
    main()
