"""The evaluator component: predicts every melody's rating for the GA, and asks people
(the feedback room `feedback/melody`) about the melodies it is least sure of.

It is a `FeedbackLoop` around `evaluator_learner()`: each rating is learned at
once, bumps the model's version and is published as LOG/KPI. A generation is
answered after the ratings asked for it have been learned, or after
`rating_wait` seconds, whichever comes first: a person sets the pace, the GA
never waits forever.

    python -m swergio_al.demos.music.evaluator --url ws://127.0.0.1:8080/ws --budget 5
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from swergio_al.client import run_until_stopped
from swergio_al.demos.music.melody import decode
from swergio_al.demos.music.model import evaluator_learner, melody_matrix
from swergio_al.demos.music.wire import (
    EVALUATE_ROOM,
    FEEDBACK_ROOM,
    KPI_ROOM,
    QUESTION,
    RATING,
    hex_to_genome,
)
from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.feedback.prequential import WINDOW
from swergio_al.protocol import DATA, Message, MessageType
from swergio_al.terminal import count

log = logging.getLogger(__name__)


class MelodyEvaluator:
    """Answers `DATA/FORWARD {generation, genomes}` in `EVALUATE_ROOM` with
    `{fitness, uncertainty, asked, version, labels}`."""

    def __init__(self, url: str, *, name: str = "evaluator", budget: int = 5,
                 rating_wait: float = 60.0, diversity: float = 0.5,
                 random_state: int | None = None, token: str | None = None,
                 verbose: bool = False) -> None:
        self.url = url
        self.verbose = verbose  # print a line per rating received
        self.budget = budget
        self.diversity = diversity  # 0: the most uncertain; more: spread over the population
        self.rating_wait = rating_wait
        self.asked: set[str] = set()  # every sample id ever sent to people
        self.genomes: dict[str, str] = {}
        self.loop = FeedbackLoop(
            evaluator_learner(random_state=random_state), name=name, url=url, answer=RATING,
            feedback_room=FEEDBACK_ROOM, kpi_room=KPI_ROOM, question=QUESTION,
            render=self._render, target=float, token=token)
        self.loop.component.on(MessageType.FORWARD.value, room=EVALUATE_ROOM, direct=False,
                               concurrent=True)(self._on_generation)
        # Labels replayed from the store after a restart mark their melodies as asked:
        # the server drops a request for an already labeled sample, and we would wait.
        self.loop.component.on(MessageType.FEEDBACK_LABEL.value, room=FEEDBACK_ROOM)(
            self._on_label)

    @property
    def version(self) -> int:
        return self.loop.version

    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()

    async def __aenter__(self) -> MelodyEvaluator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _on_label(self, message: Message) -> None:
        data = message.get(DATA)
        if isinstance(data, dict) and isinstance(data.get("sample_id"), str):
            self.asked.add(data["sample_id"])
            if self.verbose and not data.get("replay"):
                print(f"rating {data.get('answer')} from {data.get('labeler')} "
                      f"(melody {data['sample_id'][:8]})", flush=True)

    async def report_versions(self, shown: int = 0) -> None:
        """One line per new evaluator version, each from its own LOG/KPI report, until
        cancelled (the demo's terminal); `shown`: how many reports were told already
        (the catch-up's, in the ready line)."""
        while True:
            try:
                await self.loop.wait_for_kpis(shown + 1, timeout=3600)
            except TimeoutError:
                continue
            reports, shown = self.loop.kpis[shown:], len(self.loop.kpis)
            for kpi in reports:
                print(version_line(kpi), flush=True)

    def started_line(self) -> str:
        """What the terminal says once the evaluator is up; after a restart on the same
        store, that it caught up and that this run counts its versions from 1 again."""
        line = f"evaluator ready (budget {count(self.budget, 'rating')} per generation"
        labels = int(getattr(self.loop.learner, "n_labels_", 0))
        if labels:
            line += (f"; caught up on {count(labels, 'earlier rating')} from the store, "
                     f"as v{self.version} of this run")
        return line + ")"

    def _render(self, sample_id: Any, x: NDArray[Any]) -> dict[str, Any]:
        genome = hex_to_genome(str(sample_id))
        content = decode(genome).content()
        content["genome"] = str(sample_id)  # lets a Python listener rebuild the Melody exactly
        return {"kind": "melody", "content": content, "question": QUESTION}

    async def _on_generation(self, message: Message) -> dict[str, Any] | None:
        data = message.get(DATA)
        try:
            if not isinstance(data, dict):
                raise TypeError("DATA is not an object")
            ids = [str(g) for g in data["genomes"]]
            genomes = np.array([hex_to_genome(g) for g in ids])
        except (TypeError, KeyError, ValueError) as exc:
            log.warning("evaluator: ignoring a generation without valid DATA.genomes: %s", exc)
            return None
        X = await asyncio.to_thread(melody_matrix, genomes)
        doubt = np.asarray(await asyncio.to_thread(self.loop.learner.uncertainty, X))
        firsts: dict[str, int] = {}  # a melody never asked before, once even if it has twins
        for i, sample_id in enumerate(ids):
            if sample_id not in self.asked:
                firsts.setdefault(sample_id, i)
        candidates = list(firsts.values())
        chosen: list[str] = []
        if candidates and self.budget:
            picked, _ = await asyncio.to_thread(self.loop.learner.query, X[candidates],
                                                min(self.budget, len(candidates)),
                                                self.diversity)
            chosen = [ids[candidates[j]] for j in picked]
        for sample_id in chosen:
            i = firsts[sample_id]
            self.asked.add(sample_id)
            await self.loop.ask(sample_id, X[i], priority=float(doubt[i]))
        await self._wait_learned(set(chosen))
        fitness = await asyncio.to_thread(self._fitness, X)
        return {DATA: {"generation": data.get("generation"), "fitness": fitness.tolist(),
                       "uncertainty": doubt.tolist(), "asked": len(chosen),
                       "version": self.version,
                       "labels": int(getattr(self.loop.learner, "n_labels_", 0))}}

    def _fitness(self, X: NDArray[Any]) -> NDArray[np.float64]:
        if self.version == 0:  # nothing learned yet: every melody is as good as any
            return np.zeros(len(X))
        return np.asarray(self.loop.learner.predict(X), dtype=np.float64)

    async def _wait_learned(self, sample_ids: set[str]) -> None:
        deadline = time.monotonic() + self.rating_wait
        while sample_ids & self.loop.pending.keys():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await self.loop.wait_for_version(self.version + 1, timeout=left)
            except TimeoutError:
                return


def version_line(kpi: dict[str, Any]) -> str:
    """A LOG/KPI report as the demo's terminal shows it."""
    line = f"evaluator v{kpi['version']}: learned from {count(int(kpi['labels']), 'rating')}"
    if kpi.get("prequential") is not None and kpi.get("prequential_metric") == "mae":
        # each rating was predicted before it was learned: an honest error
        window = min(WINDOW, int(kpi["prequential_labels"]))
        line += (f"; its predictions were {kpi['prequential']:.2f} stars off on "
                 f"average (last {count(window, 'rating')})")
    return line


async def serve(url: str, *, budget: int, rating_wait: float, diversity: float,
                seed: int | None, token: str | None) -> int:
    async with MelodyEvaluator(url, budget=budget, rating_wait=rating_wait, diversity=diversity,
                               random_state=seed, token=token, verbose=True) as evaluator:
        print(evaluator.started_line(), flush=True)
        reporter = asyncio.create_task(evaluator.report_versions(len(evaluator.loop.kpis)))
        try:
            await evaluator.loop.wait_closed()
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws",
                        help="the server's WebSocket (default ws://127.0.0.1:8080/ws)")
    parser.add_argument("--budget", type=int, default=5,
                        help="ratings asked per generation (default 5)")
    parser.add_argument("--rating-wait", type=float, default=60.0,
                        help="seconds a generation waits for its ratings (default 60)")
    parser.add_argument("--diversity", type=float, default=0.5,
                        help="0 asks about the most uncertain melodies; up to 1 spreads the "
                             "asked ones over the population (default 0.5)")
    parser.add_argument("--seed", type=int, help="seed of the learner (default: random)")
    parser.add_argument("--token", help="component token, if the server wants one "
                                        "(default: none)")
    args = parser.parse_args(argv)
    if args.budget < 0 or args.rating_wait < 0 or not 0 <= args.diversity <= 1:
        parser.error("need --budget >= 0, --rating-wait >= 0 and --diversity in 0..1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_until_stopped(serve(args.url, budget=args.budget, rating_wait=args.rating_wait,
                                   diversity=args.diversity, seed=args.seed,
                                   token=args.token)) or 0  # None: stopped by a signal


if __name__ == "__main__":
    raise SystemExit(main())
