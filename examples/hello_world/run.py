"""Run the world and the universe against a running server; exit 0 after N exchanges.

    swergio-al serve &
    python examples/hello_world/run.py --url ws://127.0.0.1:8080/ws --exchanges 10
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from universe import Universe
from world import World


async def run(url: str, exchanges: int, timeout: float) -> bool:
    universe = Universe(url, exchanges=exchanges)
    world = World(url, exchanges=exchanges)
    try:
        async with universe, world, asyncio.timeout(timeout):
            await world.greet()
            await world.wait_closed()
            await universe.wait_closed()
    except TimeoutError:
        print(f"timed out after {timeout}s", file=sys.stderr)
    print(f"exchanges: {world.answers}", flush=True)
    return world.answers == universe.answered == exchanges


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--exchanges", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after (seconds)")
    args = parser.parse_args()
    if args.exchanges < 1:
        parser.error("--exchanges must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    return 0 if asyncio.run(run(args.url, args.exchanges, args.timeout)) else 1


if __name__ == "__main__":
    sys.exit(main())
