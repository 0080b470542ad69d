"""`swergio-al label SOURCE`: label your own data with a model in the loop, in one command.

Reads the source (swergio_al.sources), starts a server in this process (unless
`--url` names a running one), prints where to label, and runs a `PoolLoop` with
a built-in model (swergio_al.recipes). With `--simulate COLUMN` a Python
labeler answers from that column, on the same path through the server as a
person, and the command ends at `--budget`. The outputs (label_outputs.py) land
in `--out`, where the store lives too, so running it again resumes. The options
and their checks are in label_options.py, the session in label_session.py.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import NoReturn

from swergio_al.label_options import OptionError, add_arguments, prepare
from swergio_al.label_session import Session, SessionError

PROG = "swergio-al label"


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{PROG}: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str]) -> int:
    parser = _OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    from swergio_al.recipes import RecipeError
    from swergio_al.sources import SourceError

    try:
        plan = prepare(args)
    except (OptionError, SourceError, RecipeError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    for warning in plan.source.skipped:
        print(f"{PROG}: {warning}", file=sys.stderr)  # each warning says "skipped ..."
    try:
        plan.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"{PROG}: --out {plan.out}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(Session(plan).run())
    except SessionError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
