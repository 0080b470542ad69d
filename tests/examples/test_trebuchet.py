"""examples/trebuchet through `swergio-al run`: the controller learns to aim from the simulator's
gradients, keeps going when the simulator and then the server are killed mid-run, and the
pairs show in `_logging`.

The components file starts examples/trebuchet/simulator.py, examples/trebuchet/controller.py
and examples/trebuchet/targets.py, each in its own process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from swergio_al.client import Component
from tests.examples.launch import LaunchedExample

Message = dict[str, Any]


@pytest.mark.timeout(60)
async def test_controller_learns_from_gradients_and_survives_simulator_and_server_restarts(
        tmp_path: Path) -> None:
    forwards: dict[str, Message] = {}
    paired = asyncio.Event()
    kpis: list[Message] = []

    async with LaunchedExample("trebuchet", tmp_path, SEED="0", BATCHES="300") as run:
        await run.wait_for(r"server: ready", 30)
        observer = Component("observer", run.ws_url)

        @observer.on("LOG/MESSAGES", room="_logging")
        def mirrored(message: Message) -> None:
            original = message["MESSAGE"]
            if original["TYPE"] == "DATA/FORWARD" and original["SENT_BY"] == "controller":
                forwards[original["ROOT_ID"]] = original
            elif (original["TYPE"] == "DATA/GRADIENT" and original["SENT_BY"] == "simulator"
                  and original["ROOT_ID"] in forwards):
                shots = len(forwards[original["ROOT_ID"]]["DATA"]["inputs"])
                assert len(original["DATA"]["gradient"]) == shots
                paired.set()

        observer.on("LOG/KPI", room="kpi")(kpis.append)
        async with observer:
            killed = int((await run.wait_for(r"simulator: started \(pid (\d+)\)", 30)).group(1))
            await run.wait_for(r"targets +\| batch 100/300", 60)
            os.kill(killed, signal.SIGKILL)
            restarted = await run.wait_for(r"simulator: started \(pid (\d+)\)", 30)
            assert int(restarted.group(1)) != killed
            await run.wait_for(r"targets +\| batch 150/300", 60)  # training went on
            # The server itself: every component waits, reconnects and goes on.
            server = int(re.findall(r"server: started \(pid (\d+)\)", "\n".join(run.lines))[0])
            os.kill(server, signal.SIGKILL)
            await run.wait_for(r"server: started \(pid (\d+)\)", 30)
            await run.wait_for(r"targets +\| batch 250/300", 60)
            summary = await run.summary("targets", 60)
            await asyncio.wait_for(paired.wait(), 5)
        assert await run.exit_code(20) == 0, run.output
        assert run.stopped_cleanly(), run.output
        assert "Traceback" not in "\n".join(run.lines), run.output

    # Baseline from the same run: the untrained controller on the same unseen targets.
    assert summary["untrained_median_miss_m"] > 10 * summary["median_miss_m"], summary
    assert summary["miss_pct_of_range"] < 2, summary
    assert summary["gradient_max_rel_error"] < 1e-4, summary
    assert kpis and kpis[-1]["DATA"]["model"] == "trebuchet-controller"
    assert kpis[-1]["DATA"]["score"] < kpis[0]["DATA"]["score"]
