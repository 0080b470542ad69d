"""The agent component: tabular Q-learning, online, from every environment in `gridworld` at once.

    python agent.py --url ws://127.0.0.1:8080/ws --episodes 150 --seed 0

Answers each observation (DATA/FORWARD) and each DATA/REWARD with an action
(DATA/CUSTOM, TO the environment that sent it), learning from each reward as
it comes. Publishes LOG/KPI (mean return of the last 20 episodes) for the
dashboard; after `--episodes` episodes it prints one JSON line and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

import numpy as np

from swergio_al.client import Component, run_until_stopped

ROOM = "gridworld"
KPI_ROOM = "kpi"
N_STATES, N_ACTIONS = 36, 4  # the grid world's published sizes
WINDOW = 20  # episodes in the reported mean return
KPI_EVERY = 10


class QAgent:
    def __init__(self, *, learning_rate: float = 0.5, discount: float = 0.95,
                 explore_episodes: int = 60, random_state: int = 0) -> None:
        self.learning_rate = learning_rate
        self.discount = discount
        self.explore_episodes = explore_episodes
        self.rng = np.random.default_rng(random_state)
        self.q_ = np.zeros((N_STATES, N_ACTIONS))
        self.episodes_ = 0

    @property
    def epsilon(self) -> float:
        """Exploration falls linearly from 1 to 0.05 over the first `explore_episodes`."""
        return max(0.05, 1 - self.episodes_ / self.explore_episodes)

    def act(self, state: int) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(N_ACTIONS))
        best = np.flatnonzero(self.q_[state] == self.q_[state].max())
        return int(self.rng.choice(best))  # ties broken at random

    def learn(self, state: int, action: int, reward: float, next_state: int,
              terminal: bool) -> None:
        target = reward if terminal else reward + self.discount * self.q_[next_state].max()
        self.q_[state, action] += self.learning_rate * (target - self.q_[state, action])


class Coach:
    """The agent as a component: one QAgent, one running episode per environment."""

    def __init__(self, url: str, *, episodes: int, seed: int) -> None:
        self.agent = QAgent(random_state=seed)
        self.episodes = episodes
        self.returns: list[float] = []
        self.playing: dict[str, tuple[int, int, float]] = {}  # env -> state, action, return
        self.answered: dict[str, tuple[Any, dict[str, Any]]] = {}  # env -> last ROOT_ID, answer
        self.finished = asyncio.Event()
        self.component = Component("agent", url)
        self.component.on("DATA/FORWARD", room=ROOM)(self.start)
        self.component.on("DATA/REWARD", room=ROOM)(self.reward)

    def _answer(self, message: dict[str, Any], action: int | None) -> dict[str, Any]:
        answer = {"TYPE": "DATA/CUSTOM", "TO": message["SENT_BY"], "DATA": {"action": action}}
        self.answered[message["SENT_BY"]] = (message.get("ROOT_ID"), answer)
        return answer

    def _repeated(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The answer already given to a message sent again (the environment saw no answer)."""
        root, answer = self.answered.get(message["SENT_BY"], (None, None))
        return answer if root is not None and root == message.get("ROOT_ID") else None

    def start(self, message: dict[str, Any]) -> dict[str, Any]:
        if (again := self._repeated(message)) is not None:
            return again
        state = int(message["DATA"]["observation"])
        action = self.agent.act(state)
        self.playing[message["SENT_BY"]] = (state, action, 0.0)
        return self._answer(message, action)

    async def reward(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if (again := self._repeated(message)) is not None:
            return again
        env = message["SENT_BY"]
        data = message["DATA"]
        reward, next_state, done = float(data["reward"]), int(data["observation"]), data["done"]
        if env not in self.playing:
            # An episode begun before we (re)started: nothing to learn from this step,
            # but the environment waits for an action, so play on from here.
            action = None if done else self.agent.act(next_state)
            if action is not None:
                self.playing[env] = (next_state, action, 0.0)
            return self._answer(message, action)
        state, action, total = self.playing[env]
        # Only the goal ends the task; running out of steps is a cut, the future still counts.
        self.agent.learn(state, action, reward, next_state, terminal=reward > 0)
        total += reward
        if not done:
            next_action = self.agent.act(next_state)
            self.playing[env] = (next_state, next_action, total)
            return self._answer(message, next_action)
        del self.playing[env]
        await self._episode_over(total)
        return self._answer(message, None)

    async def _episode_over(self, total: float) -> None:
        if self.finished.is_set():
            return  # another environment's episode ended while we were closing: not counted
        self.returns.append(total)
        self.agent.episodes_ += 1
        if self.agent.episodes_ >= self.episodes:
            self.finished.set()  # before the await below, so no later episode slips in
        if self.agent.episodes_ % KPI_EVERY == 0:
            await self.component.send({"TYPE": "LOG/KPI", "TO_ROOM": KPI_ROOM, "DATA": {
                "model": "gridworld-agent", "version": self.agent.episodes_,
                "labels": self.agent.episodes_, "score": float(np.mean(self.returns[-WINDOW:])),
                "metric": f"mean return, last {WINDOW} episodes",
                "epsilon": self.agent.epsilon, "time": time.time()}})


async def run(url: str, *, episodes: int, seed: int) -> dict[str, Any]:
    coach = Coach(url, episodes=episodes, seed=seed)
    await coach.component.join(KPI_ROOM)  # only sent to; recorded now, joined on connect
    started = time.perf_counter()
    async with coach.component:
        print("agent ready", flush=True)
        await coach.finished.wait()
    returns = coach.returns
    return {"example": "reinforcement", "episodes": len(returns),
            "mean_return_last_20": float(np.mean(returns[-WINDOW:])),
            "mean_return_first_20": float(np.mean(returns[:WINDOW])),
            "environments": sorted(coach.answered),
            "seconds": round(time.perf_counter() - started, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--episodes", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.episodes < WINDOW:
        parser.error(f"--episodes must be at least {WINDOW}")
    logging.basicConfig(level=logging.WARNING)
    summary = run_until_stopped(run(args.url, episodes=args.episodes, seed=args.seed))
    if summary is None:
        print("stopped before the end", file=sys.stderr)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
