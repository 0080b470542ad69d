"""An environment component: plays grid-world episodes with whichever agent answers in `gridworld`.

    python environment.py --url ws://127.0.0.1:8080/ws --name env-1 --seed 1

Each episode starts with a DATA/FORWARD carrying the observation; the agent
answers with an action. Every move is followed by a DATA/REWARD carrying the
reward, the next observation and whether the episode is over; the agent
answers with its next action. Several environments can play at once: the agent
tells them apart by SENT_BY. A message without an answer is sent again, so an
agent that restarts (or starts late) picks up where the environment is.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gridworld import GridWorld

from swergio_al.client import Component, run_until_stopped

ROOM = "gridworld"
REPLY_WAIT = 2.0  # s without an answer before a message is sent again


async def play(url: str, *, name: str, seed: int) -> None:
    env = GridWorld(random_state=seed)
    component = Component(name, url)
    await component.join(ROOM)

    async def tell(kind: str, data: dict[str, Any]) -> Any:
        reply = await component.request({"TYPE": kind, "TO_ROOM": ROOM, "DATA": data},
                                        timeout=3600, expect="DATA/CUSTOM",
                                        resend_after=REPLY_WAIT)
        return reply["DATA"]["action"]

    async with component:
        print(f"{name} ready", flush=True)
        while True:  # until the launcher stops us
            action = await tell("DATA/FORWARD", {"observation": env.reset()})
            done = False
            while not done:
                observation, reward, done = env.step(int(action))
                action = await tell("DATA/REWARD", {"reward": reward, "observation": observation,
                                                    "done": done})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--name", default="env-1")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run_until_stopped(play(args.url, name=args.name, seed=args.seed))


if __name__ == "__main__":
    main()
