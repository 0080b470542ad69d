"""`swergio-al label SOURCE`: label your own data with a model in the loop, in one command.

Reads the source (swergio_al.sources), starts a server in this process (unless
`--url` names a running one), prints where to label, and runs a `PoolLoop` with
a built-in model (swergio_al.recipes). With `--simulate COLUMN` a Python
labeler answers from that column, on the same path through the server as a
person, and the command ends at `--budget`. The outputs (label_outputs.py) land
in `--out`, where the store lives too, so running it again resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

PROG = "swergio-al label"
CHOICE_PREFIX, RATING_PREFIX = "choice:", "rating:"


class OptionError(ValueError):
    """A bad option; one line."""


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{PROG}: {message}", file=sys.stderr)
        raise SystemExit(2)


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


class SessionError(RuntimeError):
    """The server or the connection failed; one line."""


def server_config(plan: Plan) -> tuple[Any, bool]:
    """The embedded server's Config, as `serve` takes it (SWERGIO_AL_* variables, then the
    options), and whether tokens were generated: on a non-loopback --host without any,
    both are, as `serve` does, so the session is not open to anyone who can reach it."""
    from swergio_al.cli import generate_tokens
    from swergio_al.config import Config

    a, media = plan.args, plan.source.media_root
    try:
        config = Config.from_env(
            host=a.host, port=a.port, store=plan.store, broker=a.broker,
            lease_seconds=a.lease_seconds, component_token=a.component_token,
            labeler_token=a.labeler_token, log_level=a.log_level,
            media_dir=str(media) if media is not None else None,
            stats_interval_seconds=0.1 if a.simulate else None)
    except ValueError as exc:  # a SWERGIO_AL_* variable that does not parse
        raise SessionError(str(exc)) from None
    return config, generate_tokens(config)


class Session:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.stop = asyncio.Event()
        # The tokens this session's model and simulated labeler send; the embedded
        # server's own (given, from the environment, or generated) once it is up.
        self.component_token: str | None = plan.args.component_token
        self.labeler_token: str | None = plan.args.labeler_token

    def _learner(self) -> Any:
        from swergio_al.learning import ActiveLearner

        recipe, answer = self.plan.recipe, self.plan.answer
        if recipe is None:
            return None
        strategy = self.plan.args.strategy or recipe.strategy
        classes = answer["choices"] if answer["type"] == "choice" else None
        return ActiveLearner(recipe.estimator, strategy, classes=classes,
                             random_state=self.plan.args.seed)

    def _pool(self) -> Any:
        from swergio_al.feedback.pool import Pool

        source, recipe = self.plan.source, self.plan.recipe
        items = source.items
        if recipe is not None:
            inputs, features = recipe.inputs, recipe.features
        else:
            texts = source.texts()
            inputs = np.asarray(texts if texts is not None else
                                [str(i.sample_id) for i in items], dtype=object)
            features = source.features()
        return Pool(ids=[item.sample_id for item in items], inputs=inputs,
                    render=lambda i: source.render(items[i]), features=features)

    async def _serve(self) -> tuple[Any, str, str]:
        """The embedded server; returns (runner, ws url, http base)."""
        from aiohttp import web

        from swergio_al.access_log import access_log_options
        from swergio_al.feedback.records import StoreError
        from swergio_al.media import serve_only
        from swergio_al.server import create_app
        from swergio_al.terminal import port_in_use

        plan = self.plan
        media = plan.source.media_root
        config, generated = server_config(plan)
        import logging

        from swergio_al.cli import GENERATED_TOKENS, log_level_problem

        problem = log_level_problem(config.log_level)
        if problem is not None:
            raise SessionError(problem)
        logging.basicConfig(level=config.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            app = create_app(config)
        except (ValueError, ImportError) as exc:  # a bad store or broker URL, a missing extra
            raise SessionError(str(exc)) from None
        if media is not None:  # its items only: not a skipped file, nor others beside them
            serve_only(app, plan.source.media_relpaths.values())
        if generated:
            print(GENERATED_TOKENS, flush=True)
        self.component_token = config.component_token or None  # "": none
        self.labeler_token = config.labeler_token or None
        runner = web.AppRunner(app, **access_log_options(config))  # no token reaches a log
        try:
            await runner.setup()
            await web.TCPSite(runner, config.host, config.port).start()
        except (OSError, StoreError) as exc:
            await runner.cleanup()
            taken = port_in_use(config.host, config.port, exc) \
                if isinstance(exc, OSError) else None
            raise SessionError(taken or f"cannot serve on {config.host}:{config.port}: "
                               f"{exc}") from None
        base = f"http://{config.host}:{config.port}"
        return runner, f"ws://{config.host}:{config.port}/ws", base

    async def run(self) -> int:
        from swergio_al.feedback.pool import PoolLoop
        from swergio_al.label_outputs import Outputs

        plan, a = self.plan, self.plan.args
        runner = None
        if a.url is None:
            runner, url, base = await self._serve()
        else:
            url = a.url
            base = url.replace("ws", "http", 1).rsplit("/ws", 1)[0]
        with contextlib.suppress(NotImplementedError):  # not on Windows' default loop
            loop_ = asyncio.get_running_loop()
            loop_.add_signal_handler(signal.SIGINT, self.stop.set)
            loop_.add_signal_handler(signal.SIGTERM, self.stop.set)
        pool = self._pool()
        outputs = Outputs(plan.out, pool, plan.answer)
        learner = self._learner()
        loop = PoolLoop(learner, pool, name=f"{plan.source.name}-model", url=url,
                        answer=plan.answer, feedback_room=plan.room, question=a.question,
                        budget=a.budget, cold_start=a.cold_start, diversity=a.diversity,
                        seed=a.seed, on_label=outputs.add_label, gold=plan.gold,
                        token=self.component_token,
                        target=float if plan.answer["type"] == "number" else None)
        labeler = None
        started = time.monotonic()
        try:
            try:
                await loop.start()
            except (OSError, TimeoutError) as exc:
                raise SessionError(f"cannot reach the server at {url}: {exc}") from None
            # only once the model is in: a link to a server that is not there helps nobody
            print(self._links(base) + ("" if a.simulate else "   (Ctrl-C stops)"), flush=True)
            before = loop.n_labels
            if plan.truth is not None:
                labeler = self._simulated_labeler(url)
                await labeler.start()
            await self._wait(loop)
            await loop.settled()
            summary = outputs.finish(loop, learner, plan.recipe, before=before,
                                     seconds=time.monotonic() - started)
            print(summary, flush=True)
            if plan.truth is None and not self.stop.is_set():
                await self.stop.wait()  # at the budget: keep serving until Ctrl-C
        finally:
            if labeler is not None:
                await labeler.close()
            await loop.stop()
            if runner is not None:
                await runner.cleanup()
        return 0

    def _links(self, base: str) -> str:
        """Where to label and watch, with the tokens they need (as `serve` prints them)."""
        label = f"?token={self.labeler_token}" if self.labeler_token else ""
        dashboard = f"?token={self.component_token}" if self.component_token else ""
        return f"Label at {base}/label/{self.plan.room}{label}   " \
               f"dashboard: {base}/dashboard{dashboard}"

    async def _wait(self, loop: Any) -> None:
        finished = asyncio.ensure_future(loop.finished.wait())
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({finished, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            finished.cancel()
            stopped.cancel()
            await asyncio.gather(finished, stopped, return_exceptions=True)

    def _simulated_labeler(self, url: str) -> Any:
        from swergio_al.feedback import Labeler

        a, answer, truth = self.plan.args, self.plan.answer, self.plan.truth
        assert truth is not None
        by_text = {str(k): v for k, v in truth.items()}

        async def respond(task: dict[str, Any]) -> Any:
            if a.simulate_delay:
                await asyncio.sleep(a.simulate_delay)
            sample_id = task["sample_id"]
            value = truth.get(sample_id, by_text.get(str(sample_id)))
            return noisy(answer, value, sample_id, a.simulate_noise, a.seed)

        return Labeler("simulated-labeler", url, respond, room=self.plan.room,
                       token=self.labeler_token)


def noisy(schema: dict[str, Any], value: Any, sample_id: Any, p: float, seed: int) -> Any:
    """The true answer, or with probability `p` a wrong one; the same for a sample every run."""
    if p <= 0:
        return value
    rng = np.random.default_rng([seed, zlib.crc32(str(sample_id).encode())])
    if rng.random() >= p:
        return value
    if schema["type"] == "choice":
        others = [c for c in schema["choices"] if c != value]
        return others[int(rng.integers(len(others)))]
    if schema["type"] == "rating":
        others = [v for v in range(schema["min"], schema["max"] + 1) if v != value]
        return others[int(rng.integers(len(others)))]
    if schema["type"] == "number":
        return float(value) + float(rng.normal())
    return value
