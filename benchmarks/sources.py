"""How long reading a source takes before the first task: a 100 000-row CSV as texts and
as a table, the same rows as JSON lines, and the 1 797 scikit-learn digits as a PNG
folder (each image opened and verified by Pillow).

    python benchmarks/sources.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from swergio_al.sources import Source, load_source


def timed(load: Callable[[], Source], repeats: int = 3) -> tuple[float, int]:
    """Best of `repeats` (the machine is shared), and the number of items read."""
    best, count = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = len(load().items)
        best = min(best, time.perf_counter() - start)
    return best, count


def write_tables(folder: Path, rows: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    values = rng.random((rows, 3))
    table, lines = folder / "reviews.csv", folder / "reviews.jsonl"
    with table.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["id", "text", "x1", "x2", "x3", "label"])
        for i in range(rows):
            writer.writerow([f"s{i}", f"review number {i}, fine enough", *values[i], "pos"])
    with lines.open("w", encoding="utf-8") as stream:
        for i in range(rows):
            stream.write(json.dumps({"id": i, "text": f"review number {i}", "x1": values[i, 0],
                                     "x2": values[i, 1], "x3": values[i, 2]}) + "\n")
    return table, lines


def write_digits(folder: Path) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = folder / "digits"
    for i, (image, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        path = root / str(target) / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 15).astype(np.uint8)).save(path)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        table, lines = write_tables(folder, args.rows)
        digits = write_digits(folder)
        cases = [
            ("CSV, --text", lambda: load_source(table, text="text", id_column="id")),
            ("CSV, table (3 numeric columns)", lambda: load_source(table, id_column="id")),
            ("JSONL, --text", lambda: load_source(lines, text="text", id_column="id")),
            ("PNG folder (digits)", lambda: load_source(digits)),
        ]
        print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
        print("| source | items | seconds | items/s |\n|---|---:|---:|---:|")
        for name, load in cases:
            seconds, count = timed(load)
            print(f"| {name} | {count} | {seconds:.2f} | {count / seconds:,.0f} |")


if __name__ == "__main__":
    main()
