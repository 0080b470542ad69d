"""Label-quality benchmark: simulated people of known accuracy, through the real server.

    python benchmarks/quality.py [--seeds 5] [--samples 300]

Per seed, `swergio-al serve` runs in its own process with a fresh SQLite store.
Six Python `Labeler`s answer a 3-class question: five are right with
probability 0.95, 0.9, 0.85, 0.7 and 0.55 (else a wrong class at random), one
clicks at random. Three FeedbackLoop models (logistic regression on 5 features)
each ask about the same `--samples` samples, in waves of 50, in rooms of their own:

  raw       overlap 3, learns every raw answer (what the loop did before issue 14)
  fixed     overlap 3, learns each sample's Dawid–Skene aggregate
  adaptive  up to 3: a second answer when the first labeler's estimated accuracy
            is low or the model disagrees, a third when those two disagree

Reported, averaged over the seeds: accuracy against the truth of majority vote
and of Dawid–Skene on the fixed room's answers; the mean absolute error of each
labeler's Dawid–Skene accuracy estimate (against the accuracy they were given,
and against the share they actually got right); each model's held-out accuracy,
and that of a 5-nearest-neighbour classifier fitted on the raw room's answers vs
the fixed loop's aggregates (a model less robust to label noise); the adaptive
room's answers per sample and aggregate accuracy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from load import free_port, start_server  # the sibling benchmark's server helpers
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from swergio_al.feedback import Labeler
from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.feedback.quality import dawid_skene, majority_vote
from swergio_al.learning import ActiveLearner

CLASSES = ["a", "b", "c"]
CHOICE = {"type": "choice", "choices": CLASSES}
ACCURACY = {"p95": 0.95, "p90": 0.9, "p85": 0.85, "p70": 0.7, "p55": 0.55, "random": 1 / 3}
ARMS = ("raw", "fixed", "adaptive")
WAVE = 50


class Task:
    """The simulated world of one seed: features, truth, a held-out set."""

    def __init__(self, seed: int, samples: int, held_out: int = 1500) -> None:
        rng = np.random.default_rng(seed)
        centers = rng.normal(scale=1.2, size=(3, 5))
        y = rng.integers(0, 3, size=samples + held_out)
        X = centers[y] + rng.normal(size=(samples + held_out, 5))
        self.X, self.truth = X[:samples], y[:samples]
        self.X_test = X[samples:]
        self.y_test = np.asarray(CLASSES)[y[samples:]]


def person(name: str, task: Task, seed: int) -> Any:
    rng = np.random.default_rng([seed, sum(map(ord, name))])

    def answer(data: dict[str, Any]) -> str:
        true = int(task.truth[int(data["sample_id"])])
        if name == "random":
            return CLASSES[int(rng.integers(3))]
        if rng.random() < ACCURACY[name]:
            return CLASSES[true]
        return CLASSES[(true + int(rng.integers(1, 3))) % 3]

    return answer


def model(arm: str, url: str, task: Task) -> FeedbackLoop:
    learner = ActiveLearner(LogisticRegression(max_iter=300), classes=CLASSES,
                            incremental=False, random_state=0)
    options: dict[str, Any] = {"overlap": 3, "aggregate": "dawid_skene"}
    if arm == "raw":
        options = {}  # overlap 1 in the loop: every raw answer is learned
    elif arm == "adaptive":
        options["adaptive"] = True
    return FeedbackLoop(learner, name=f"model-{arm}", url=url, answer=CHOICE,
                        feedback_room=f"feedback/{arm}", validation=(task.X_test, task.y_test),
                        rescore_interval=1e9, **options)


async def drained(session: aiohttp.ClientSession, base: str, room: str, loop: FeedbackLoop,
                  timeout: float) -> int:
    """Wait until the room has nothing queued or leased and the model learned every label."""
    async with asyncio.timeout(timeout):
        while True:
            async with session.get(f"{base}/api/stats", params={"room": room}) as response:
                stats = (await response.json()).get(room, {})
            labeled = stats.get("labeled", 0)
            if stats.get("queued") == 0 and stats.get("in_flight") == 0:
                await loop.wait_learned(labeled, timeout=timeout)
                return int(labeled)
            await asyncio.sleep(0.05)  # a benchmark polling the public numbers


async def run_seed(seed: int, samples: int, url: str, timeout: float) -> dict[str, Any]:
    task = Task(seed, samples)
    base = url.removeprefix("ws://").removesuffix("/ws")
    base = f"http://{base}"
    rooms = [f"feedback/{arm}" for arm in ARMS]
    loops = {arm: model(arm, url, task) for arm in ARMS}
    people = [Labeler(name, url, person(name, task, seed), room=rooms) for name in ACCURACY]
    async with aiohttp.ClientSession() as session:
        for loop in loops.values():
            await loop.start()
        for labeler in people:
            await labeler.start()
        try:
            for start in range(0, samples, WAVE):
                for i in range(start, min(start + WAVE, samples)):
                    for arm, loop in loops.items():
                        await loop.ask(i, task.X[i], overlap=3 if arm == "raw" else None)
                for arm, loop in loops.items():
                    await drained(session, base, f"feedback/{arm}", loop, timeout)
            exports = {}
            for arm in ARMS:
                async with session.get(f"{base}/api/labels.jsonl",
                                       params={"room": f"feedback/{arm}"}) as response:
                    exports[arm] = [json.loads(line) for line in
                                    (await response.text()).splitlines()]
        finally:
            for labeler in people:
                await labeler.close()
            for loop in loops.values():
                await loop.stop()
    return measure(task, loops, exports)


def measure(task: Task, loops: dict[str, FeedbackLoop],
            exports: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    truth = {i: CLASSES[int(t)] for i, t in enumerate(task.truth)}
    fixed = [(r["sample_id"], r["labeler"], r["answer"]) for r in exports["fixed"]]
    vote, ds = majority_vote(fixed, CLASSES), dawid_skene(fixed, CLASSES)

    def right(samples: list[Any], values: list[Any]) -> float:
        return float(np.mean([values[k] == truth[s] for k, s in enumerate(samples)]))

    assert ds.accuracy is not None
    got = {name: np.mean([a == truth[s] for s, n, a in fixed if n == name])
           for name in ds.labelers}
    # The same training data for a model that is not robust to label noise: k nearest
    # neighbours on every raw answer vs on the aggregates the fixed loop taught.
    raw = exports["raw"]
    raw_knn = KNeighborsClassifier(5).fit(np.asarray([task.X[r["sample_id"]] for r in raw]),
                                          [r["answer"] for r in raw])
    teacher = loops["fixed"].teacher
    assert teacher is not None
    taught = list(teacher.taught)
    agg_knn = KNeighborsClassifier(5).fit(np.asarray([task.X[s] for s in taught]),
                                          [teacher.taught[s] for s in taught])
    adaptive = exports["adaptive"]
    adaptive_rows = {r["sample_id"]: r["aggregate"] for r in adaptive}
    return {
        "majority": right(vote.samples, vote.values),
        "dawid_skene": right(ds.samples, ds.values),
        "mae_given": float(np.mean([abs(a - ACCURACY[str(n)])
                                    for n, a in zip(ds.labelers, ds.accuracy, strict=True)])),
        "mae_actual": float(np.mean([abs(a - got[n])
                                     for n, a in zip(ds.labelers, ds.accuracy, strict=True)])),
        **{f"model_{arm}": loops[arm].kpis[-1]["score"] for arm in ARMS},
        "knn_raw": float(raw_knn.score(task.X_test, task.y_test)),
        "knn_fixed": float(agg_knn.score(task.X_test, task.y_test)),
        "answers_fixed": len(exports["fixed"]) / len(task.truth),
        "answers_adaptive": len(adaptive) / len(task.truth),
        "aggregate_fixed": float(np.mean([r["aggregate"] == truth[r["sample_id"]]
                                          for r in exports["fixed"]])),
        "aggregate_adaptive": float(np.mean([v == truth[s] for s, v in adaptive_rows.items()])),
    }


ROWS = [("majority vote accuracy", "majority"), ("Dawid–Skene accuracy", "dawid_skene"),
        ("labeler accuracy MAE (vs given)", "mae_given"),
        ("labeler accuracy MAE (vs actual share right)", "mae_actual"),
        ("model held-out accuracy, raw answers", "model_raw"),
        ("model held-out accuracy, aggregates (overlap 3)", "model_fixed"),
        ("model held-out accuracy, adaptive overlap", "model_adaptive"),
        ("5-NN on the same labels: raw answers", "knn_raw"),
        ("5-NN on the same labels: aggregates", "knn_fixed"),
        ("answers per sample, fixed overlap 3", "answers_fixed"),
        ("answers per sample, adaptive", "answers_adaptive"),
        ("aggregate accuracy, fixed overlap 3", "aggregate_fixed"),
        ("aggregate accuracy, adaptive", "aggregate_adaptive")]


def report(results: list[dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    lines = [f"# quality benchmark: {args.samples} samples, {len(results)} seeds, overlap 3, "
             f"3 classes, labelers {', '.join(ACCURACY)}",
             f"# {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
             f", {seconds:.0f} s", "",
             "| figure | mean | per seed |", "|---|---|---|"]
    for title, key in ROWS:
        values = [r[key] for r in results]
        lines.append(f"| {title} | {statistics.mean(values):.3f} | "
                     f"{' '.join(f'{v:.3f}' for v in values)} |")
    mean = {key: statistics.mean(r[key] for r in results) for _, key in ROWS}
    saved = 1 - mean["answers_adaptive"] / mean["answers_fixed"]
    ds_better = mean["dawid_skene"] >= mean["majority"] + 0.03
    as_good = mean["aggregate_adaptive"] >= mean["aggregate_fixed"] - 0.01
    lines += ["", "targets:",
              f"  Dawid–Skene >= majority + 0.03: {_met(ds_better)}",
              f"  labeler accuracy MAE <= 0.05: {_met(mean['mae_given'] <= 0.05)}",
              f"  aggregates teach a better model than raw answers: "
              f"{_met(mean['model_fixed'] > mean['model_raw'])}",
              f"  adaptive: {saved:.0%} fewer answers (>= 25%), aggregate accuracy within 0.01: "
              f"{_met(saved >= 0.25 and as_good)}"]
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds a wave may take before the run is abandoned")
    args = parser.parse_args()
    started = time.perf_counter()
    results = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            server = start_server(port, Path(tmp) / "quality.db")
            try:
                results.append(asyncio.run(run_seed(seed, args.samples,
                                                    f"ws://127.0.0.1:{port}/ws", args.timeout)))
            finally:
                server.terminate()
                server.wait(15)
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in results[-1].items()),
              file=sys.stderr)
    print(report(results, args, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
