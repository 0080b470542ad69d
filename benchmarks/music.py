"""Music benchmark (issue 7): how many ratings must a person give for good melodies?

The GA runs in-process (no server). Three ways to give it fitness, each for the
same generations and 5 seeds:

  all     a person rates every melody of every generation (population x generations);
  active  the evaluator predicts every melody; each generation `budget` melodies it
          is unsure of are rated and taught at once (strategy `std`; batch diversity
          0.5 weighs that by distance to melodies already picked or rated, so a
          near-copy of a rated melody is not asked again);
  random  the same evaluator and budget, but the rated melodies are chosen at random.

The person is the simulated listener (`taste` + Gaussian noise, whole stars); the
score reported is the population's mean noise-free `taste` (0..5). With
`--listener module:function` (as `swergio-al demo music` takes) that function is
the person instead, and the score is its own mean rating of the population.

    python benchmarks/music.py                       # 5 seeds, 30 generations (~1 min)
    python benchmarks/music.py --seeds 2 --generations 10 --svg /tmp/music.svg
    PYTHONPATH=examples/music_generator python benchmarks/music.py \
        --listener my_listener:likes_high_notes --seeds 1 --generations 5 --svg ''
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

# One run per core; BLAS threads would only fight each other. Set before numpy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from swergio_al.demos.music.ga import GeneticAlgorithm  # noqa: E402
from swergio_al.demos.music.listener import (  # noqa: E402
    Listener,
    SimulatedListener,
    checked_rating,
    load_listener,
    taste,
)
from swergio_al.demos.music.melody import Melody, decode  # noqa: E402
from swergio_al.demos.music.model import evaluator_learner, melody_matrix  # noqa: E402

METHODS = ("all", "active", "random")
LABELS = {"all": "(a) rate everything", "active": "(b) evaluator + active learning",
          "random": "(c) evaluator, random melodies"}
COLOURS = {"all": "#555555", "active": "#d62728", "random": "#1f77b4"}


@dataclass(frozen=True)
class Settings:
    population: int = 50
    generations: int = 30
    budget: int = 5
    noise: float = 0.5
    diversity: float = 0.5  # ActiveLearner.query's trade of uncertainty against spread
    listener: str = "simulated"  # or module:function, loaded in each worker process


Curve = list[tuple[int, float]]  # (ratings so far, mean taste of the population)


def mean_score(population: np.ndarray, score: Listener = taste) -> float:
    return float(np.mean([score(decode(genome)) for genome in population]))


def person_and_score(settings: Settings, seed: int) -> tuple[Listener, Listener]:
    """Who rates, and what the population is scored by (the noise-free taste, or the
    custom listener itself: its true taste is not known apart from its answers)."""
    if settings.listener == "simulated":
        return SimulatedListener(noise=settings.noise, random_state=seed + 10_000), taste
    function = load_listener(settings.listener)

    def score(melody: Melody) -> float:
        return checked_rating(function, melody)

    def person(melody: Melody) -> float:  # whole stars, as the demo's listener gives them
        return float(round(score(melody)))

    return person, score


def run(method: str, seed: int, settings: Settings) -> Curve:
    ga = GeneticAlgorithm(population_size=settings.population, random_state=seed)
    population = ga.initialize()
    person, score = person_and_score(settings, seed)
    rate: Callable[[np.ndarray], float] = lambda genome: person(decode(genome))  # noqa: E731
    learner = evaluator_learner(strategy="std" if method == "active" else "random",
                                random_state=seed)
    ratings = 0
    curve: Curve = [(0, mean_score(population, score))]
    for _ in range(settings.generations):
        if method == "all":
            fitness = np.array([rate(genome) for genome in population])
            ratings += len(population)
        else:
            X = melody_matrix(population)
            chosen, _ = learner.query(X, n=settings.budget,
                                      diversity=settings.diversity if method == "active" else 0)
            learner.teach(X[chosen], [rate(population[i]) for i in chosen])
            ratings += len(chosen)
            fitness = learner.predict(X)
        population = ga.step(population, fitness)
        curve.append((ratings, mean_score(population, score)))
    return curve


def _job(args: tuple[str, int, Settings]) -> tuple[str, int, Curve]:
    method, seed, settings = args
    return method, seed, run(method, seed, settings)


def ratings_to_reach(curve: Curve, score: float) -> int | None:
    return next((n for n, s in curve if s >= score), None)


def svg_plot(curves: dict[str, Curve], *, title: str) -> str:
    """Mean score against ratings given (log x axis), one line per method."""
    width, height, left, right, top, bottom = 640, 400, 60, 20, 40, 50
    xs = [n for curve in curves.values() for n, _ in curve if n > 0]
    ys = [s for curve in curves.values() for _, s in curve]
    x_lo, x_hi = np.log10(min(xs)), np.log10(max(xs))
    y_lo, y_hi = np.floor(min(ys) * 2) / 2, np.ceil(max(ys) * 2) / 2

    def px(n: float) -> float:
        return left + (np.log10(n) - x_lo) / (x_hi - x_lo) * (width - left - right)

    def py(s: float) -> float:
        return top + (y_hi - s) / (y_hi - y_lo) * (height - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    for tick in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000):
        if 10 ** x_lo <= tick <= 10 ** x_hi:
            x = px(tick)
            out += [f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" '
                    f'stroke="#eee"/>',
                    f'<text x="{x:.1f}" y="{height - bottom + 16}" '
                    f'text-anchor="middle">{tick}</text>']
    for tick in np.arange(y_lo, y_hi + 1e-9, 0.5):
        y = py(tick)
        out += [f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                f'stroke="#eee"/>',
                f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.1f}</text>']
    out += [f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">'
            f'ratings a person gave (log scale)</text>',
            f'<text transform="translate(16 {(top + height - bottom) / 2}) rotate(-90)" '
            f'text-anchor="middle">mean true score of the population (0-5)</text>']
    target = curves["all"][-1][1]  # the line (b) has to reach
    out += [f'<line x1="{left}" y1="{py(target):.1f}" x2="{width - right}" y2="{py(target):.1f}" '
            f'stroke="{COLOURS["all"]}" stroke-dasharray="4 4"/>',
            f'<text x="{width - right - 4}" y="{py(target) - 5:.1f}" text-anchor="end" '
            f'fill="{COLOURS["all"]}">(a) final score {target:.2f}</text>']
    for i, (method, curve) in enumerate(curves.items()):
        points = " ".join(f"{px(n):.1f},{py(s):.1f}" for n, s in curve if n > 0)
        out.append(f'<polyline points="{points}" fill="none" stroke="{COLOURS[method]}" '
                   f'stroke-width="2"/>')
        y = top + 14 + 18 * i
        out += [f'<line x1="{left + 12}" y1="{y - 4}" x2="{left + 36}" y2="{y - 4}" '
                f'stroke="{COLOURS[method]}" stroke-width="2"/>',
                f'<text x="{left + 42}" y="{y}">{LABELS[method]}</text>']
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per method (default 5)")
    parser.add_argument("--generations", type=int, default=Settings.generations,
                        help=f"generations per run (default {Settings.generations})")
    parser.add_argument("--population", type=int, default=Settings.population,
                        help=f"melodies per generation (default {Settings.population})")
    parser.add_argument("--budget", type=int, default=Settings.budget,
                        help="ratings per generation for the evaluator runs "
                             f"(default {Settings.budget})")
    parser.add_argument("--noise", type=float, default=Settings.noise,
                        help="the simulated person's inconsistency in stars, 1 sd "
                             f"(default {Settings.noise})")
    parser.add_argument("--diversity", type=float, default=Settings.diversity,
                        help="batch diversity of the active runs' queries, 0..1 "
                             f"(default {Settings.diversity})")
    parser.add_argument("--listener", default="simulated",
                        help="the person: 'simulated' or module:function rating a Melody "
                             "0..5, as in `swergio-al demo music` (default simulated)")
    parser.add_argument("--svg", default="docs/music_benchmark.svg",
                        help="plot file, '' for none (default docs/music_benchmark.svg)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: one per core)")
    args = parser.parse_args(argv)
    if args.listener != "simulated":
        try:
            load_listener(args.listener)  # fail here in one line, not in every worker
        except ValueError as exc:
            parser.error(str(exc))
    settings = Settings(args.population, args.generations, args.budget, args.noise,
                        args.diversity, args.listener)

    started = time.perf_counter()
    jobs = [(m, seed, settings) for m in METHODS for seed in range(args.seeds)]
    with get_context("spawn").Pool(max(1, args.jobs)) as pool:
        results = pool.map(_job, jobs)
    runs: dict[str, list[Curve]] = {m: [] for m in METHODS}
    for method, _, curve in sorted(results, key=lambda r: (r[0], r[1])):
        runs[method].append(curve)
    # Every seed of a method rates on the same schedule, so curves average pointwise.
    mean_curves = {m: [(runs[m][0][g][0], float(np.mean([c[g][1] for c in runs[m]])))
                       for g in range(settings.generations + 1)] for m in METHODS}
    target = mean_curves["all"][-1][1]

    print(f"music benchmark: population {settings.population}, {settings.generations} "
          f"generations, budget {settings.budget}/generation, listener noise {settings.noise}, "
          f"diversity {settings.diversity}, listener {settings.listener}, "
          f"{args.seeds} seeds, start score {mean_curves['all'][0][1]:.2f}")
    print(f"{'method':34} {'ratings':>8} {'final score':>14} {'ratings to reach (a)':>21}")
    for method in METHODS:
        finals = [c[-1][1] for c in runs[method]]
        reach = ratings_to_reach(mean_curves[method], target)
        print(f"{LABELS[method]:34} {mean_curves[method][-1][0]:8d} "
              f"{np.mean(finals):8.2f} ± {np.std(finals):.2f} "
              f"{'never' if reach is None else reach:>21}")
    for budget_point in sorted({n for n, _ in mean_curves['active']} & {25, 50, 100, 150}):
        a = dict(mean_curves["active"])[budget_point]
        r = dict(mean_curves["random"])[budget_point]
        print(f"  at {budget_point:4d} ratings: active {a:.2f}  random {r:.2f}  "
              f"(difference {a - r:+.2f})")
    print(f"({time.perf_counter() - started:.0f} s on {os.cpu_count()} cores)")
    if args.svg:
        path = Path(args.svg)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(svg_plot(mean_curves, title=f"Music GA, {args.seeds} seeds: "
                                                    f"score vs ratings given"))
        print(f"plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
