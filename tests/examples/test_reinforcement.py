"""examples/reinforcement through `swergio-al run`: three environment processes feed one
Q-learning agent, which ends far above a random policy on the same grid world."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swergio_al.client import Component
from tests.examples.launch import LaunchedExample, example_function


def random_policy_return() -> float:
    baseline = example_function("reinforcement", "gridworld", "random_policy_return")
    return baseline(episodes=500, random_state=0)


@pytest.mark.timeout(60)
async def test_agent_learns_online_from_several_environments(tmp_path: Path) -> None:
    random_return = random_policy_return()
    kpis: list[dict[str, Any]] = []
    async with LaunchedExample("reinforcement", tmp_path, SEED="0", EPISODES="150") as run:
        await run.wait_for(r"server: ready", 30)
        observer = Component("observer", run.ws_url)
        observer.on("LOG/KPI", room="kpi")(kpis.append)
        async with observer:
            summary = await run.summary("agent", 60)
        assert await run.exit_code(20) == 0, run.output
        assert run.stopped_cleanly(), run.output

    assert summary["environments"] == ["env-1", "env-2", "env-3"], summary
    assert summary["episodes"] == 150
    assert 0 < random_return < 0.3  # the task is not one a random walk solves
    assert summary["mean_return_last_20"] >= 3 * random_return, (summary, random_return)
    assert [k["DATA"]["model"] for k in kpis] == ["gridworld-agent"] * len(kpis) != []
