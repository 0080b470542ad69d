"""`swergio-al label`'s options, and the `Plan` they make: everything checked before
anything starts (the answer schema, the source, the model recipe, --simulate and --gold)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CHOICE_PREFIX, RATING_PREFIX = "choice:", "rating:"


class OptionError(ValueError):
    """A bad option; one line."""



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a CSV/TSV/JSONL file, or a folder of images or audio files")
    what = parser.add_argument_group("what to ask")
    what.add_argument("--answer", required=True,
                      help="choice:cat,dog,bird | rating:0-5 | text | number")
    what.add_argument("--question", default="",
                      help="the question shown with each sample (default: none)")
    what.add_argument("--text", metavar="COLUMN", help="show this column as text (default: none)")
    what.add_argument("--image", metavar="COLUMN",
                      help="show the image file this column names, relative to the file "
                           "(default: none)")
    what.add_argument("--audio", metavar="COLUMN",
                      help="play the audio file this column names, relative to the file "
                           "(default: none)")
    what.add_argument("--features", metavar="COL,COL",
                      help="numeric columns, shown as a table (default: every numeric column)")
    what.add_argument("--id", dest="id_column", metavar="COLUMN",
                      help="sample ids from this column (default: the row number)")
    model = parser.add_argument_group("the model")
    model.add_argument("--model", default="auto",
                       help="auto | text | table | image | module:factory (default auto)")
    # Checked in prepare(): listing the registry here would import scikit-learn for every
    # `swergio-al` command, --help included (seconds on a loaded machine).
    model.add_argument("--strategy",
                       help="how uncertainty is scored: margin, entropy, least_confidence, "
                            "std, random, ... (default margin; std for numbers)")
    model.add_argument("--diversity", type=float, default=0.0,
                       help="0..1: trade uncertainty for spread among the asked (default 0)")
    model.add_argument("--cold-start", choices=("diverse", "random"), default="diverse",
                       help="before the model can score: spread-out samples (default) or random")
    model.add_argument("--seed", type=int, default=0,
                       help="makes a run repeatable: cold start, ties, simulated noise "
                            "(default 0)")
    run = parser.add_argument_group("the run")
    run.add_argument("--budget", type=int,
                     help="stop at this many labels for the source, earlier runs count "
                          "(default: when every sample is labeled)")
    run.add_argument("--room", help="feedback room (default feedback/<source name>)")
    run.add_argument("--out", help="output folder (default ./<source name>-labels)")
    run.add_argument("--gold", metavar="FILE",
                     help="CSV/TSV/JSONL with columns sample_id,answer: samples with a "
                          "known answer, mixed into each labeler's stream to measure them, "
                          "never learned (rate: SWERGIO_AL_GOLD_RATE; default: none)")
    run.add_argument("--simulate", metavar="COLUMN",
                     help="answers come from this column (folder sources: 'folder'); "
                          "the command ends at --budget (default: people answer)")
    run.add_argument("--simulate-noise", type=float, default=0.0, metavar="P",
                     help="the simulated labeler answers wrongly with probability P "
                          "(default 0)")
    run.add_argument("--simulate-delay", type=float, default=0.0, metavar="SECONDS",
                     help="the simulated labeler's time per answer (default 0)")
    server = parser.add_argument_group("the server (as `swergio-al serve`)")
    server.add_argument("--url", help="use the server at ws://host:port/ws instead of "
                                      "starting one (default: start one)")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    server.add_argument("--store", help="sqlite:///path or postgresql://... "
                                        "(default sqlite in --out)")
    server.add_argument("--broker", help="memory:// (default) or redis://host:port/db")
    server.add_argument("--lease-seconds", type=float, help="task lease (default 120)")
    server.add_argument("--component-token", help="token for components, the model uses it "
                        "(default: none)")
    server.add_argument("--labeler-token", help="token labelers must send (default: none)")
    server.add_argument("--log-level", default="WARNING", help="server log level (default WARNING)")


def parse_answer(spec: str) -> dict[str, Any]:
    """`choice:a,b` | `rating:0-5` | `text` | `number` → the answer schema."""
    if spec.startswith(CHOICE_PREFIX):
        choices = [c.strip() for c in spec[len(CHOICE_PREFIX):].split(",")]
        if "" in choices and len(choices) > 1:
            raise OptionError(f"--answer {spec}: a choice is empty (two commas in a row, or "
                              "one at the start or end); e.g. choice:cat,dog")
        if len(choices) < 2 or "" in choices or len(set(choices)) != len(choices):
            raise OptionError(f"--answer {spec}: give two or more distinct choices, "
                              "e.g. choice:cat,dog")
        return {"type": "choice", "choices": choices}
    if spec.startswith(RATING_PREFIX):
        low, sep, high = spec[len(RATING_PREFIX):].partition("-")
        try:
            lo, hi = int(low), int(high)
        except ValueError:
            lo, hi = 0, -1
        if not sep or lo >= hi:
            raise OptionError(f"--answer {spec}: expected rating:LOW-HIGH with LOW < HIGH, "
                              "e.g. rating:0-5")
        return {"type": "rating", "min": lo, "max": hi, "step": 1}
    if spec == "text":
        return {"type": "text", "max_length": 2000}
    if spec == "number":
        return {"type": "number"}
    raise OptionError(f"--answer {spec}: expected choice:A,B,... | rating:LOW-HIGH | "
                      "text | number")


def simulated_value(schema: dict[str, Any], value: Any) -> Any:
    """A --simulate column's value as an answer of `schema`; ValueError if it cannot be."""
    kind = schema["type"]
    if kind == "choice":
        text = str(value)
        if text not in schema["choices"]:
            raise ValueError(f"{text!r:.40} is not one of the choices "
                             f"{', '.join(schema['choices'])}")
        return text
    if kind == "text":
        return str(value)
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"{value!r:.40} is not a finite number")
    if kind == "rating":
        if not schema["min"] <= number <= schema["max"] or not number.is_integer():
            raise ValueError(f"{value!r:.40} is not a rating in {schema['min']}..{schema['max']}")
        return int(number)
    return int(number) if number.is_integer() else number


@dataclass
class Plan:
    """Everything the session needs, checked before anything starts."""

    args: argparse.Namespace
    source: Any
    recipe: Any
    answer: dict[str, Any]
    room: str
    out: Path
    store: str
    truth: dict[Any, Any] | None  # --simulate: sample id -> answer
    gold: dict[Any, Any]  # --gold: sample id -> known answer


def prepare(args: argparse.Namespace) -> Plan:
    from swergio_al.recipes import make_recipe
    from swergio_al.sources import load_source

    answer = parse_answer(args.answer)
    if args.strategy is not None:
        from swergio_al.learning.strategies import available_strategies

        if args.strategy not in available_strategies():
            raise OptionError(f"--strategy must be one of {', '.join(available_strategies())}, "
                              f"got {args.strategy!r}")
    if args.budget is not None and args.budget < 1:
        raise OptionError(f"--budget must be at least 1, got {args.budget}")
    if not 0.0 <= args.diversity <= 1.0:
        raise OptionError(f"--diversity must be within 0..1, got {args.diversity}")
    if not 0.0 <= args.simulate_noise <= 1.0:
        raise OptionError(f"--simulate-noise must be within 0..1, got {args.simulate_noise}")
    if args.simulate_delay < 0:
        raise OptionError(f"--simulate-delay must be >= 0, got {args.simulate_delay}")
    if not 0 < args.port < 65536:
        raise OptionError(f"--port must be within 1..65535, got {args.port}")
    if args.url is not None and not args.url.startswith(("ws://", "wss://")):
        raise OptionError(f"--url must look like ws://host:port/ws, got {args.url!r}")
    features = None
    if args.features is not None:
        features = [c.strip() for c in args.features.split(",") if c.strip()]
        if not features:
            raise OptionError("--features needs column names, e.g. --features width,height")
    source = load_source(args.source, text=args.text, image=args.image, audio=args.audio,
                         features=features, id_column=args.id_column,
                         exclude=(args.simulate,) if args.simulate else ())
    truth = None
    if args.simulate is not None:
        values = source.column(args.simulate)
        truth = {}
        for item, value in zip(source.items, values, strict=True):
            try:
                truth[item.sample_id] = simulated_value(answer, value)
            except (TypeError, ValueError) as exc:
                raise OptionError(f"--simulate {args.simulate}: sample {item.sample_id!r}: "
                                  f"{exc}") from None
    gold = {}
    if args.gold is not None:
        from swergio_al.label_gold import load_gold

        try:
            gold = load_gold(args.gold, [item.sample_id for item in source.items],
                             lambda value: simulated_value(answer, value))
        except ValueError as exc:
            raise OptionError(f"--gold: {exc}") from None
    recipe = None
    if answer["type"] != "text":  # free text teaches no built-in model
        recipe = make_recipe(args.model, source, regression=answer["type"] == "number",
                             seed=args.seed)
    out = Path(args.out) if args.out else Path(f"{source.name}-labels")
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {out}: exists and is not a folder")
    store = args.store or f"sqlite:///{out / 'store.db'}"
    return Plan(args, source, recipe, answer, args.room or f"feedback/{source.name}", out,
                store, truth, gold)
