"""A `swergio-al label` session: the embedded server, the pool loop, the simulated labeler."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import zlib
from typing import Any

import numpy as np

from swergio_al.label_options import Plan
from swergio_al.terminal import link_base


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
        return runner, f"ws://{config.host}:{config.port}/ws", link_base(config.host, config.port)

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
