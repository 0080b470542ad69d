"""Feedback-loop benchmark: labels through the service, and submit-to-KPI latency.

    python benchmarks/feedback.py [--labels 10000] [--labelers 50] [--latency-samples 200]

`swergio-al serve` runs in its own process with a fresh SQLite store; the
model (a FeedbackLoop around SGDClassifier partial_fit) and the labelers run
in this process, on 127.0.0.1.

  1. Throughput: the model asks about `--labels` samples; `--labelers` Python
     labelers answer each task at once. Reported: labels/s from the first
     task to the model having learned them all, and whether it learned every
     one exactly once.
  2. Latency, with those labels already in the store and in the model: one
     labeler answers `--latency-samples` tasks one at a time; for each, the
     time from sending FEEDBACK/LABEL to receiving the model's LOG/KPI for the
     version that learned it. p50 / p99 / max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from load import free_port, start_server  # the sibling benchmark's server helpers
from sklearn.linear_model import SGDClassifier

from swergio_al.feedback import Labeler
from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.learning import ActiveLearner

ROOM = "feedback/bench"
CHOICE = {"type": "choice", "choices": [0, 1]}


def truth(task: dict[str, Any]) -> int:
    content = task["content"]
    return int(content["x0"] + content["x1"] > 0)


async def throughput(url: str, model: FeedbackLoop, n_labels: int, n_labelers: int,
                     timeout: float) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_labels, 2))
    for i, x in enumerate(X):
        await model.ask(f"t{i}", x, priority=float(rng.random()))
    labelers = [Labeler(f"labeler-{i}", url, truth, room=ROOM) for i in range(n_labelers)]
    started = time.perf_counter()
    await asyncio.gather(*(lab.start() for lab in labelers))
    try:
        async with asyncio.timeout(timeout):
            while len(model.learned) < n_labels:
                await model.wait_for_version(model.version + 1, timeout=timeout)
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*(lab.close() for lab in labelers))
    return {"labels": n_labels, "labelers": n_labelers, "seconds": elapsed,
            "labels_per_s": n_labels / elapsed, "learned": len(model.learned),
            "training_rows": int(model.learner.n_labels_)}


async def latency(url: str, model: FeedbackLoop, n: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 2))
    samples: list[float] = []
    async with aiohttp.ClientSession() as session:
        labeler = await session.ws_connect(url)
        watcher = await session.ws_connect(url)
        await labeler.send_json({"TYPE": "COMMAND/REGISTER", "NAME": "timer",
                                 "ROLE": "labeler"})
        await watcher.send_json({"TYPE": "COMMAND/REGISTER", "NAME": "watcher"})
        await watcher.send_json({"TYPE": "COMMAND/JOINROOM", "ROOM": "kpi"})
        await labeler.send_json({"TYPE": "COMMAND/JOINROOM", "ROOM": ROOM})
        for i, x in enumerate(X):
            await model.ask(f"l{i}", x)
        for _ in range(n):
            task = await _next(labeler, "FEEDBACK/TASK")
            version = model.version
            began = time.perf_counter()
            await labeler.send_json({"TYPE": "FEEDBACK/LABEL", "TO_ROOM": ROOM,
                                     "DATA": {"task_id": task["DATA"]["task_id"],
                                              "answer": truth(task["DATA"]), "seconds": 0}})
            while True:
                kpi = await _next(watcher, "LOG/KPI")
                if kpi["DATA"]["version"] > version and not kpi["DATA"]["refit"]:
                    break
            samples.append((time.perf_counter() - began) * 1000)
        await labeler.close()
        await watcher.close()
    samples.sort()
    return {"n": n, "p50_ms": statistics.median(samples),
            "p99_ms": samples[min(len(samples) - 1, int(0.99 * len(samples)))],
            "max_ms": samples[-1], "training_rows": int(model.learner.n_labels_)}


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        message = json.loads(await ws.receive_str(timeout=30))
        if message.get("TYPE") == kind:
            return message  # type: ignore[no-any-return]


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server(port, Path(tmp) / "bench.db")
        url = f"ws://127.0.0.1:{port}/ws"
        learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0),
                                classes=[0, 1], random_state=0)
        model = FeedbackLoop(learner, name="bench-model", url=url, answer=CHOICE,
                             feedback_room=ROOM, kpi_room="kpi")
        try:
            async with model:
                t = await throughput(url, model, args.labels, args.labelers, args.timeout)
                lat = await latency(url, model, args.latency_samples)
        finally:
            server.terminate()
            server.wait(15)
    cpu = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    print(f"\nFeedback loop on 127.0.0.1 ({cpu})\n")
    print("| measure | value |\n|---|---|")
    print(f"| labels through the service ({t['labelers']} labelers) | {t['labels']} in "
          f"{t['seconds']:.1f} s = **{t['labels_per_s']:.0f} labels/s** |")
    print(f"| model learned each exactly once | {t['learned']} label ids, "
          f"{t['training_rows']} training rows |")
    print(f"| submit → LOG/KPI p50 (with {t['training_rows']} labels in store and model) | "
          f"**{lat['p50_ms']:.1f} ms** |")
    print(f"| submit → LOG/KPI p99 | **{lat['p99_ms']:.1f} ms** (max {lat['max_ms']:.1f}, "
          f"n={lat['n']}) |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300.0)
    asyncio.run(main(parser.parse_args()))
