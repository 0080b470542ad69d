"""A grid world with slippery moves: the environment the agent learns in (numpy only).

The agent starts in one corner and is paid 1 for reaching the opposite one
within `max_steps`; every move slips to a random direction with probability
`slip`. `python gridworld.py` prints the mean return of a random policy, the
baseline the agent is measured against.
"""

from __future__ import annotations

import json

import numpy as np

MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # up, down, left, right


class GridWorld:
    def __init__(self, *, size: int = 6, slip: float = 0.2, max_steps: int = 30,
                 random_state: int | None = None) -> None:
        self.size = size
        self.slip = slip
        self.max_steps = max_steps
        self.rng = np.random.default_rng(random_state)
        self.position = np.zeros(2, dtype=int)
        self.steps = 0

    @property
    def n_states(self) -> int:
        return self.size * self.size

    @property
    def n_actions(self) -> int:
        return len(MOVES)

    def observation(self) -> int:
        return int(self.position[0] * self.size + self.position[1])

    def reset(self) -> int:
        self.position[:] = 0
        self.steps = 0
        return self.observation()

    def step(self, action: int) -> tuple[int, float, bool]:
        """(observation, reward, done) after trying to move in direction `action`."""
        if not 0 <= action < len(MOVES):
            raise ValueError(f"action must be 0..{len(MOVES) - 1}, got {action!r}")
        if self.rng.random() < self.slip:
            action = int(self.rng.integers(len(MOVES)))
        self.position = np.clip(self.position + MOVES[action], 0, self.size - 1)
        self.steps += 1
        at_goal = bool((self.position == self.size - 1).all())
        return self.observation(), 1.0 if at_goal else 0.0, at_goal or self.steps >= self.max_steps


def random_policy_return(episodes: int = 500, random_state: int = 0) -> float:
    env = GridWorld(random_state=random_state)
    rng = np.random.default_rng(random_state + 1)
    total = 0.0
    for _ in range(episodes):
        env.reset()
        done = False
        while not done:
            _, reward, done = env.step(int(rng.integers(env.n_actions)))
            total += reward
    return total / episodes


if __name__ == "__main__":
    print(json.dumps({"random_policy_mean_return": random_policy_return()}))
