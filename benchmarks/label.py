"""`swergio-al label` end to end, with simulated labelers: does pool mode pay off?

Three sources are written to a temporary folder, each split into a pool (what the
command labels) and a held-out test set:

- digits: scikit-learn's 8x8 digits as a folder of PNGs, one subfolder per digit
  (`--simulate folder`), the image recipe;
- table: scikit-learn's breast-cancer table as a CSV, the table recipe;
- text: short product reviews generated from phrase lists (a quarter of them with a
  twist, "good price, but it broke"), the text recipe.

For each source and seed the real command runs (`python -m swergio_al.cli label ...
--simulate ... --budget B`, an embedded server, a Python labeler on the same path as a
person) once with margin sampling and a diverse cold start and once at random (random
strategy, random cold start). The labels it collected, in order, are then fitted from
scratch with the same recipe at 10/20/50/100 labels and scored on the test set (mean of
the seeds). On digits a third arm (margin, random cold start, 20 labels) measures the
cold start. Finally one run per source with a labeler taking 50 ms per answer gives
labels/s through the whole path and how often the queue ran dry.

    python benchmarks/label.py            # ~10 min on a 2-core box
    python benchmarks/label.py --seeds 2  # quicker
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import free_port  # benchmarks/common.py
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits

from swergio_al.recipes import make_recipe
from swergio_al.sources import load_source

CHECKPOINTS = (10, 20, 50, 100)
COLD = (5, 10, 15, 20)


# -- the sources --------------------------------------------------------------------------

def write_digits(root: Path, rng: np.random.Generator) -> tuple[dict[str, Any], Any]:
    from PIL import Image

    digits = load_digits()
    order = rng.permutation(len(digits.target))
    pool, test = order[:1200], order[1200:]
    folder = root / "digits"
    for i in pool:
        target = folder / str(digits.target[i])
        target.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(target / f"{i}.png")
    test_folder = root / "digits-test"
    test_folder.mkdir()
    paths = []
    for i in test:
        path = test_folder / f"{i}.png"
        Image.fromarray((digits.images[i] * (255 / 16)).astype(np.uint8), mode="L").save(path)
        paths.append(path)
    from swergio_al.recipes import image_pixels

    spec = {"name": "digits (PNG folder)", "path": folder, "options": [], "answer":
            "choice:" + ",".join(str(d) for d in range(10)), "simulate": "folder"}
    return spec, (image_pixels(paths), np.asarray([str(d) for d in digits.target[test]]))


def write_table(root: Path, rng: np.random.Generator) -> tuple[dict[str, Any], Any]:
    data = load_breast_cancer()
    order = rng.permutation(len(data.target))
    pool, test = order[:400], order[400:]
    names = [re.sub(r"\W+", "_", n) for n in data.feature_names]
    path = root / "cancer.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "diagnosis"])
        for i in pool:
            writer.writerow([*data.data[i], data.target_names[data.target[i]]])
    spec = {"name": "table (breast cancer CSV)", "path": path, "options": [],
            "answer": "choice:malignant,benign", "simulate": "diagnosis"}
    return spec, (data.data[test], data.target_names[data.target[test]])


PRODUCTS = ["kettle", "headset", "backpack", "desk lamp", "phone case", "blender", "shoe rack",
            "coffee grinder", "keyboard", "rain jacket", "water bottle", "toaster", "mouse",
            "tent", "umbrella", "charger", "frying pan", "office chair", "alarm clock",
            "bike light", "yoga mat", "speaker", "camera bag", "thermos", "hair dryer"]
GOOD = ["works exactly as described", "feels solid and well made", "arrived early",
        "is worth every penny", "has lasted a year", "is quiet and easy to clean",
        "looks better than the photos", "was simple to set up", "does the job perfectly",
        "exceeded my expectations", "is comfortable all day", "keeps its charge for days",
        "is light but sturdy", "heats up fast", "fits perfectly", "is great value"]
BAD = ["broke after two weeks", "stopped working within a month", "feels cheap and flimsy",
       "arrived scratched", "is smaller than advertised", "is far too loud", "leaks",
       "was a waste of money", "smells of plastic", "dies in an hour", "hurts after ten minutes",
       "never charged properly", "came with parts missing", "overheats", "falls apart",
       "is impossible to clean"]
FILLER = ["I bought it last spring.", "It was a gift for my sister.", "Ordered the blue one.",
          "We use it in the kitchen.", "My second one from this shop.", "Delivery took a week.",
          "", "", ""]


def review(rng: random.Random, positive: bool) -> str:
    product = rng.choice(PRODUCTS)
    main, other = (GOOD, BAD) if positive else (BAD, GOOD)
    filler = rng.choice(FILLER)
    if rng.random() < 0.25:  # a twist: the last clause decides
        return f"{filler} The {product} {rng.choice(other)} at first, but now it " \
               f"{rng.choice(main)}.".strip()
    return f"{filler} The {product} {rng.choice(main)}.".strip()


def write_text(root: Path, rng: np.random.Generator) -> tuple[dict[str, Any], Any]:
    r = random.Random(int(rng.integers(1 << 30)))
    rows = [(review(r, bool(i % 2)), "positive" if i % 2 else "negative") for i in range(1000)]
    r.shuffle(rows)
    path = root / "reviews.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "sentiment"])
        writer.writerows(rows[:700])
    spec = {"name": "text (review CSV)", "path": path, "options": ["--text", "text"],
            "answer": "choice:positive,negative", "simulate": "sentiment"}
    return spec, (np.asarray([t for t, _ in rows[700:]], dtype=object),
                  np.asarray([s for _, s in rows[700:]]))


# -- running the command ------------------------------------------------------------------

def run_label(spec: dict[str, Any], out: Path, budget: int, seed: int, *extra: str
              ) -> dict[str, Any]:
    command = [sys.executable, "-m", "swergio_al.cli", "label", str(spec["path"]),
               *spec["options"], "--answer", spec["answer"], "--simulate", spec["simulate"],
               "--budget", str(budget), "--seed", str(seed), "--out", str(out),
               "--port", str(free_port()), *extra]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    summary = done.stdout.strip().splitlines()[-1]
    with (out / "labels.csv").open(newline="") as handle:
        labels = [(row["sample_id"], row["answer"]) for row in csv.DictReader(handle)]
    rate = re.search(r"\(([\d.]+) labels/s\)", summary)
    dry = re.search(r"queue ran dry (\d+) times?", summary)
    return {"labels": labels, "summary": summary, "wall": time.monotonic() - started,
            "rate": float(rate.group(1)) if rate else float("nan"),
            "dry": int(dry.group(1)) if dry else -1}


class Scorer:
    """Fits the source's recipe from scratch on the first k labels; scores on the test set."""

    def __init__(self, spec: dict[str, Any], test: tuple[Any, Any]) -> None:
        options = dict(zip(spec["options"][::2], spec["options"][1::2], strict=True))
        self.source = load_source(spec["path"], text=options.get("--text"),
                                  exclude=(spec["simulate"],))
        self.recipe = make_recipe("auto", self.source, seed=0)
        self.row = {str(item.sample_id): i for i, item in enumerate(self.source.items)}
        self.X_test, self.y_test = test

    def accuracy(self, labels: list[tuple[str, str]], k: int) -> float:
        chosen = labels[:k]
        rows = np.asarray([self.row[sid] for sid, _ in chosen])
        y = np.asarray([answer for _, answer in chosen])
        if len(set(y)) < 2:
            return float(np.mean(self.y_test.astype(str) == y[0]))
        fitted = clone(self.recipe.estimator).fit(self.recipe.inputs[rows], y)
        model = self.recipe.export(fitted)
        predicted = model.predict(self.X_test)
        return float(np.mean(np.asarray(predicted).astype(str) == self.y_test.astype(str)))


def auc(values: list[float], points: tuple[int, ...]) -> float:
    """Mean accuracy over [first, last] labels (trapezoids)."""
    xs = np.asarray(points, dtype=float)
    return float(np.trapezoid(values, xs) / (xs[-1] - xs[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", choices=("digits", "table", "text"), action="append")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    makers = {"digits": write_digits, "table": write_table, "text": write_text}
    budget = max(CHECKPOINTS)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"| source | arm | {' | '.join(f'{k} labels' for k in CHECKPOINTS)} | AUC |")
        print(f"|---|---|{'---|' * len(CHECKPOINTS)}---|")
        speed_rows, cold_rows = [], []
        for key in args.only or list(makers):
            spec, test = makers[key](root, rng)
            scorer = Scorer(spec, test)
            curves: dict[str, list[list[float]]] = {"margin": [], "random": []}
            cold: dict[str, list[list[float]]] = {"diverse": [], "random": []}
            for seed in range(args.seeds):
                for arm, extra in (("margin", ()), ("random", ("--strategy", "random",
                                                               "--cold-start", "random"))):
                    run = run_label(spec, root / f"{key}-{arm}-{seed}", budget, seed, *extra)
                    curves[arm].append([scorer.accuracy(run["labels"], k) for k in CHECKPOINTS])
                    if key == "digits" and arm == "margin":
                        cold["diverse"].append([scorer.accuracy(run["labels"], k) for k in COLD])
                if key == "digits":
                    run = run_label(spec, root / f"{key}-cold-{seed}", max(COLD), seed,
                                    "--cold-start", "random")
                    cold["random"].append([scorer.accuracy(run["labels"], k) for k in COLD])
            for arm, runs in curves.items():
                mean = np.mean(runs, axis=0).tolist()
                cells = " | ".join(f"{v:.3f}" for v in mean)
                print(f"| {spec['name']} | {arm} | {cells} | {auc(mean, CHECKPOINTS):.3f} |",
                      flush=True)
            if key == "digits":
                for arm, runs in cold.items():
                    mean = np.mean(runs, axis=0).tolist()
                    cold_rows.append((arm, mean))
            run = run_label(spec, root / f"{key}-speed", budget, 0, "--simulate-delay", "0.05")
            speed_rows.append((spec["name"], run["rate"], run["dry"], run["wall"]))
        if cold_rows:
            print("\nCold start on digits (margin after it), mean accuracy:")
            print(f"| cold start | {' | '.join(f'{k} labels' for k in COLD)} | mean |")
            print(f"|---|{'---|' * len(COLD)}---|")
            for arm, mean in cold_rows:
                cells = " | ".join(f"{v:.3f}" for v in mean)
                print(f"| {arm} | {cells} | {auc(mean, COLD):.3f} |")
        print("\nThrough the whole path, a labeler answering every 50 ms (at most 20 labels/s):")
        print("| source | labels/s | queue ran dry (stats samples) | wall seconds |")
        print("|---|---|---|---|")
        for name, rate, dry, wall in speed_rows:
            print(f"| {name} | {rate:.2f} | {dry} | {wall:.1f} |")


if __name__ == "__main__":
    main()
