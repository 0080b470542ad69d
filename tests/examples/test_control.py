"""examples/control through `swergio-al run`: the optimizer steers the plant to its setpoint
through the learned model, closer than an untuned proportional controller gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swergio_al.client import Component
from tests.examples.launch import LaunchedExample, example_function


def proportional_error() -> float:
    """Untuned gain 1 on the same plant (same seed), over the same steps and window."""
    baseline = example_function("control", "heater", "proportional_error")
    return baseline(gain=1.0, steps=150, window=20, random_state=0)


@pytest.mark.timeout(60)
async def test_optimizer_reaches_the_setpoint_through_the_learned_model(tmp_path: Path) -> None:
    baseline = proportional_error()
    kpis: list[dict[str, Any]] = []
    async with LaunchedExample("control", tmp_path, SEED="0", STEPS="150") as run:
        await run.wait_for(r"server: ready", 30)
        observer = Component("observer", run.ws_url)
        observer.on("LOG/KPI", room="kpi")(kpis.append)
        async with observer:
            summary = await run.summary("optimizer", 60)
        assert await run.exit_code(20) == 0, run.output
        assert run.stopped_cleanly(), run.output

    assert summary["initial_error"] == 40.0
    assert summary["final_error"] < 0.05 * summary["initial_error"], summary
    assert summary["final_error"] < baseline, (summary, baseline)
    assert {k["DATA"]["model"] for k in kpis} == {"heater-model", "heater-optimizer"}
