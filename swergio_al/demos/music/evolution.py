"""The evolution component: a GA whose fitness comes from the evaluator, through a room.

Each generation goes to `music/evaluate` as DATA/FORWARD {generation, genomes};
the evaluator's reply carries the fitness. Progress (mean predicted fitness,
the evaluator's version and labels, and — only for reporting, never for
selection — the simulated listener's noise-free score) goes to `music/progress`
and stdout. At the end a `summary {...}` JSON line is printed and, with
`--wav`, the best melody is written as a WAV file.

    python -m swergio_al.demos.music.evolution --url ws://127.0.0.1:8080/ws --generations 20
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import numpy as np

from swergio_al.client import Component, run_until_stopped
from swergio_al.demos.music.ga import GeneticAlgorithm
from swergio_al.demos.music.listener import taste
from swergio_al.demos.music.melody import decode
from swergio_al.demos.music.synth import write_wav
from swergio_al.demos.music.wire import EVALUATE_ROOM, PROGRESS_ROOM, genome_to_hex
from swergio_al.protocol import DATA, TO_ROOM, TYPE, MessageType

log = logging.getLogger(__name__)


class Evolution:
    """Runs `generations` generations against the evaluator; `history` holds the numbers."""

    def __init__(self, url: str, *, name: str = "evolution", population_size: int = 50,
                 generations: int = 20, evaluate_timeout: float = 120.0, attempts: int = 3,
                 random_state: int | None = None, token: str | None = None) -> None:
        self.generations = generations
        self.evaluate_timeout = evaluate_timeout
        self.attempts = attempts
        self.ga = GeneticAlgorithm(population_size=population_size, random_state=random_state)
        self.component = Component(name, url, token=token)
        self.history: list[dict[str, Any]] = []
        self.best: str | None = None

    async def run(self) -> dict[str, Any]:
        component = self.component
        await component.join(EVALUATE_ROOM)
        await component.join(PROGRESS_ROOM)
        async with component:
            population = self.ga.initialize()
            for generation in range(self.generations + 1):
                genomes = [genome_to_hex(g) for g in population]
                verdict = await self._evaluate(generation, genomes)
                fitness = np.asarray(verdict.get("fitness"), dtype=np.float64)
                if fitness.shape != (len(population),):
                    raise RuntimeError(f"the evaluator answered {fitness.shape} fitness values "
                                       f"for {len(population)} genomes")
                true_scores = [taste(decode(g)) for g in population]
                self.best = genomes[int(np.argmax(fitness))]
                row = {"generation": generation, "predicted": round(float(fitness.mean()), 3),
                       "true_score": round(float(np.mean(true_scores)), 3),
                       "asked": verdict.get("asked"), "labels": verdict.get("labels"),
                       "evaluator_version": verdict.get("version"), "best": self.best}
                self.history.append(row)
                print(f"generation {generation:3d}: true score {row['true_score']:.2f}, "
                      f"predicted {row['predicted']:.2f}, ratings {row['labels']}, "
                      f"evaluator v{row['evaluator_version']}", flush=True)
                await component.send({TYPE: MessageType.LOG_CUSTOM.value, TO_ROOM: PROGRESS_ROOM,
                                      DATA: row})
                if generation < self.generations:  # the last one is only measured
                    population = self.ga.step(population, fitness)
        return self.summary()

    async def _evaluate(self, generation: int, genomes: list[str]) -> dict[str, Any]:
        """Ask the evaluator; ask again if it is silent (say, restarted by the launcher)."""
        for attempt in range(1, self.attempts + 1):
            try:
                reply = await self.component.request(
                    {TYPE: MessageType.FORWARD.value, TO_ROOM: EVALUATE_ROOM,
                     DATA: {"generation": generation, "genomes": genomes}},
                    timeout=self.evaluate_timeout)
            except TimeoutError:
                log.warning("evolution: no fitness for generation %d within %g s (attempt "
                            "%d of %d)", generation, self.evaluate_timeout, attempt,
                            self.attempts)
                continue
            data = reply.get(DATA)
            return data if isinstance(data, dict) else {}
        raise TimeoutError(f"the evaluator did not answer generation {generation}")

    def summary(self) -> dict[str, Any]:
        first, last = self.history[0], self.history[-1]
        return {"generations": last["generation"], "ratings": last["labels"],
                "evaluator_version": last["evaluator_version"],
                "true_score_first": first["true_score"], "true_score_last": last["true_score"],
                "best": self.best}


async def evolve(args: argparse.Namespace) -> int:
    evolution = Evolution(args.url, population_size=args.population,
                          generations=args.generations, evaluate_timeout=args.evaluate_timeout,
                          random_state=args.seed, token=args.token)
    summary = await evolution.run()
    print("summary " + json.dumps(summary), flush=True)
    if args.wav and evolution.best is not None:
        from swergio_al.demos.music.wire import hex_to_genome

        write_wav(decode(hex_to_genome(evolution.best)), args.wav)
        print(f"best melody written to {args.wav}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--evaluate-timeout", type=float, default=120.0,
                        help="seconds to wait for the evaluator's answer to a generation")
    parser.add_argument("--wav", help="write the best melody of the last generation here")
    parser.add_argument("--token", help="component token, if the server wants one")
    args = parser.parse_args(argv)
    if args.population < 2 or args.generations < 1:
        parser.error("need --population >= 2 and --generations >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_until_stopped(evolve(args)) or 0  # None: stopped by a signal


if __name__ == "__main__":
    raise SystemExit(main())
