"""`swergio-al demo music`: server, evaluator, evolution and (optionally) a listener
as one process tree, run by the launcher.

Without `--headless` the demo prints the labeling URL and keeps serving after
the last generation until Ctrl-C; with `--headless` it ends when evolution is
done and prints the summary (evolution's `summary {...}` line).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from swergio_al.launcher import ComponentSpec, Launcher, Ready
from swergio_al.terminal import port_problem

PY = sys.executable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080,
                        help="port of the demo's server on 127.0.0.1 (default 8080)")
    parser.add_argument("--store", default="sqlite:///music_demo.db",
                        help="feedback store (default sqlite:///music_demo.db)")
    parser.add_argument("--population", type=int, default=30,
                        help="melodies per generation (default 30)")
    parser.add_argument("--generations", type=int, default=20,
                        help="generations to evolve (default 20)")
    parser.add_argument("--budget", type=int, default=3,
                        help="melodies a person is asked to rate per generation (default 3)")
    parser.add_argument("--rating-wait", type=float, default=None,
                        help="seconds a generation waits for its ratings "
                             "(default 120, headless 30)")
    parser.add_argument("--diversity", type=float, default=0.5,
                        help="0 asks about the most uncertain melodies; up to 1 spreads "
                             "the asked ones over the population (default 0.5)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the GA and the evaluator (default 0)")
    parser.add_argument("--listener", default=None,
                        help="'simulated' or module:function rating a Melody 0..5 "
                             "(default: people in the browser; headless: simulated)")
    parser.add_argument("--noise", type=float, default=0.5,
                        help="the simulated listener's inconsistency in stars, 1 sd "
                             "(default 0.5)")
    parser.add_argument("--headless", action="store_true",
                        help="run the generations to the end, print a summary and exit "
                             "(default: serve until Ctrl-C)")
    parser.add_argument("--wav", help="write the best melody at the end to this WAV file "
                                      "(default: none)")


def components(args: argparse.Namespace) -> list[ComponentSpec]:
    url = f"ws://127.0.0.1:{args.port}/ws"
    listener = args.listener or ("simulated" if args.headless else None)
    rating_wait = args.rating_wait if args.rating_wait is not None else (
        30.0 if args.headless else 120.0)
    quiet = {"SWERGIO_AL_LOG_LEVEL": "WARNING"}
    # A server that cannot start (its port was taken after all) will not on a retry either.
    specs = [ComponentSpec("server", (PY, "-m", "swergio_al.cli", "serve", "--port",
                                      str(args.port), "--store", args.store), env=quiet,
                           ready=Ready("http", f"http://127.0.0.1:{args.port}/healthz", 30.0),
                           max_restarts=0)]
    if listener is not None:
        # No readiness wait: it may join the feedback room while the evaluator starts;
        # tasks queued before it arrives are handed to it when it does.
        specs.append(ComponentSpec(
            "listener", (PY, "-m", "swergio_al.demos.music.labeler", "--url", url,
                         "--listener", listener, "--noise", str(args.noise),
                         "--seed", str(args.seed + 1))))
    # Evolution's first generation must find the evaluator in the room: wait for it.
    specs.append(ComponentSpec("evaluator", (PY, "-m", "swergio_al.demos.music.evaluator",
                                             "--url", url, "--budget", str(args.budget),
                                             "--rating-wait", str(rating_wait),
                                             "--diversity", str(args.diversity),
                                             "--seed", str(args.seed)),
                               ready=Ready("line", "evaluator ready", 60.0)))
    evolution = [PY, "-m", "swergio_al.demos.music.evolution", "--url", url,
                 "--population", str(args.population), "--generations", str(args.generations),
                 "--seed", str(args.seed), "--evaluate-timeout", str(rating_wait + 60)]
    if args.wav:
        evolution += ["--wav", str(Path(args.wav).resolve())]
    # Headless: the demo ends with evolution. Otherwise the server stays up for browsing.
    specs.append(ComponentSpec("evolution", tuple(evolution), main=args.headless,
                               restart="never"))
    return specs


def run(args: argparse.Namespace) -> int:
    if (args.population < 2 or args.generations < 1 or args.budget < 0
            or not 0 <= args.diversity <= 1):
        print("swergio-al demo music: need --population >= 2, --generations >= 1, "
              "--budget >= 0, --diversity in 0..1", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print("swergio-al demo music: --port must be 1..65535", file=sys.stderr)
        return 2
    problem = port_problem(args.port)
    if problem:
        print(f"swergio-al demo music: {problem}", file=sys.stderr)
        return 1
    started = None if args.headless else (lambda: print(instructions(args.port), flush=True))
    return asyncio.run(Launcher(components(args)).run(on_started=started))


def instructions(port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    return (f"\nReady. Open {base}/label/feedback/melody to rate melodies:\n"
            f"  Space plays a melody, 0-5 rates it, Enter sends it (S skips).\n"
            f"  Watch the evaluator learn at {base}/dashboard. Ctrl-C stops the demo.\n"
            f"  Each rating and each new evaluator version is printed below.\n")
