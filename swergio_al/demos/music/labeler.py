"""A listener as a labeler component: rates the melodies of `feedback/melody` with a
function (the simulated listener by default, or `--listener module:function`),
through the same server path as a person in the browser.

    python -m swergio_al.demos.music.labeler --url ws://127.0.0.1:8080/ws --seed 1
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from swergio_al.client import run_until_stopped
from swergio_al.demos.music.listener import (
    Listener,
    SimulatedListener,
    checked_rating,
    load_listener,
)
from swergio_al.demos.music.melody import decode
from swergio_al.demos.music.wire import FEEDBACK_ROOM, hex_to_genome
from swergio_al.feedback import SKIP, Labeler

log = logging.getLogger(__name__)


def rating_answer(listener: Listener) -> Any:
    """`answer(task)` for a Labeler: rebuild the melody from its genome and rate it."""

    def answer(task: dict[str, Any]) -> Any:
        content = task.get("content")
        try:
            melody = decode(hex_to_genome(content["genome"]))  # type: ignore[index]
            return round(checked_rating(listener, melody))
        except (TypeError, KeyError, ValueError) as exc:
            log.warning("cannot rate task %s: %s; skipping it", task.get("task_id"), exc)
            return SKIP

    return answer


async def listen(args: argparse.Namespace) -> int:
    listener = (SimulatedListener(noise=args.noise, random_state=args.seed)
                if args.listener == "simulated" else load_listener(args.listener))
    labeler = Labeler(args.name, args.url, rating_answer(listener), room=FEEDBACK_ROOM,
                      token=args.token)
    async with labeler:
        print(f"listener {args.name} ready ({args.listener})", flush=True)
        assert labeler.component is not None
        await labeler.component.wait_closed()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--name", default="simulated-listener")
    parser.add_argument("--listener", default="simulated",
                        help="'simulated' or module:function (a Melody -> a rating 0..5)")
    parser.add_argument("--noise", type=float, default=0.5,
                        help="the simulated listener's inconsistency (stars, 1 sd)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--token", help="labeler token, if the server wants one")
    args = parser.parse_args(argv)
    if args.listener != "simulated":
        try:
            load_listener(args.listener)
        except ValueError as exc:
            parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_until_stopped(listen(args)) or 0  # None: stopped by a signal


if __name__ == "__main__":
    raise SystemExit(main())
