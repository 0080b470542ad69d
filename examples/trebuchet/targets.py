"""The target generator: asks the controller to hit targets, then measures it on unseen ones.

    python targets.py --url ws://127.0.0.1:8080/ws --batches 300 --seed 0

Sends batches of random target distances into `targets` (DATA/FORWARD,
MODEL_STATUS 1 = train), measures the controller on 20 unseen targets before
and after training (MODEL_STATUS 2 = validate), asks for the gradient check,
and prints one JSON line: {"example": "trebuchet", "median_miss_m": ..., ...}.
Exits 0 when the trained controller's median miss is below 2% of the target range.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

import numpy as np

from swergio_al.client import Component, run_until_stopped

ROOM = "targets"
TARGET_RANGE = (20.0, 120.0)
TRAIN, VALIDATE = 1, 2
EVAL_TARGETS = 20


async def run(url: str, *, batches: int, batch_size: int, seed: int) -> dict[str, Any]:
    train_rng = np.random.default_rng(seed)
    unseen = np.random.default_rng(seed + 10_000).uniform(*TARGET_RANGE, EVAL_TARGETS)
    generator = Component("targets", url)
    await generator.join(ROOM)

    async def ask(data: dict[str, Any], status: int | None = None,
                  kind: str = "DATA/FORWARD") -> dict[str, Any]:
        message: dict[str, Any] = {"TYPE": kind, "TO_ROOM": ROOM, "DATA": data}
        if status is not None:
            message["MODEL_STATUS"] = status
        # Sent again after a while without an answer: the controller may not be up yet, or
        # the server restarted and lost it (the controller answers a repeat without training).
        reply = await generator.request(message, timeout=120, expect="DATA/CUSTOM",
                                        resend_after=3)
        return dict(reply["DATA"])

    async def median_miss() -> float:
        reply = await ask({"targets": unseen.tolist()}, VALIDATE)
        return float(np.median(np.abs(reply["miss"])))

    async with generator:
        started = time.perf_counter()
        before = await median_miss()
        for batch in range(batches):
            await ask({"targets": train_rng.uniform(*TARGET_RANGE, batch_size).tolist()}, TRAIN)
            if (batch + 1) % 50 == 0:
                print(f"batch {batch + 1}/{batches}", flush=True)
        after = await median_miss()
        check = await ask({"check": "gradients", "points": 8}, kind="DATA/CUSTOM")
        span = TARGET_RANGE[1] - TARGET_RANGE[0]
        return {"example": "trebuchet", "median_miss_m": round(after, 4),
                "untrained_median_miss_m": round(before, 4), "target_range_m": list(TARGET_RANGE),
                "miss_pct_of_range": round(100 * after / span, 3),
                "gradient_max_rel_error": check["gradient_max_rel_error"],
                "batches": batches, "seconds": round(time.perf_counter() - started, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.batches < 1 or args.batch_size < 1:
        parser.error("--batches and --batch-size must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    summary = run_until_stopped(run(args.url, batches=args.batches, batch_size=args.batch_size,
                                    seed=args.seed))
    if summary is None:
        print("stopped before the end", file=sys.stderr)
        return 1
    print(json.dumps(summary), flush=True)
    return 0 if summary["miss_pct_of_range"] < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
