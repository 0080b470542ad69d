"""Active-learning benchmark: learning curves, incremental vs refit, query-step timing.

Protocol (issue 4): on ``load_digits`` and a ``make_classification`` problem, a
stratified 70/30 pool/test split (per seed), a scaler fitted on the pool, one seed
label per class, then labels added one at a time up to 200, 5 seeds. Batch rows
choose 10 samples at a time; their labels still arrive (and are learned) one by
one, as in the feedback loop. Printed: accuracy at 10/20/50/100/200 labels, the
mean accuracy over the curve (normalized AUC), labels needed to reach 95% of the
same model's full-pool accuracy (median over seeds), median ms per query step.

    python benchmarks/learning.py                      # everything of ours (~4 min, 2 cores)
    python benchmarks/learning.py --modal-python /tmp/modal-venv/bin/python
    python benchmarks/learning.py --seeds 2 --max-labels 100 --datasets digits   # quicker

The modAL side runs in the interpreter given by ``--modal-python`` (modAL-python
0.4.2.1 needs scikit-learn < 1.8) and imports nothing from swergio_al; its rows
are merged into the same tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from typing import Any

# Runs go in parallel, one per core: BLAS threads would only fight each other (and
# forked children of a threaded BLAS crawl). Set before numpy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

CHECKPOINTS = (10, 20, 50, 100, 200)
DATASETS = ("digits", "synthetic")
N_CLASSES = {"digits": 10, "synthetic": 5}


# --- the protocol, shared by both interpreters (sklearn and numpy only) ---------------------


def load_problem(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits, make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if name == "digits":
        X, y = load_digits(return_X_y=True)
    elif name == "synthetic":
        X, y = make_classification(
            n_samples=2000, n_features=20, n_informative=10, n_redundant=5, n_classes=5,
            n_clusters_per_class=1, class_sep=1.2, flip_y=0.01, random_state=0,
        )
    else:
        raise ValueError(f"unknown dataset {name!r}; choose from {DATASETS}")
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    scaler = StandardScaler().fit(X_pool)
    return scaler.transform(X_pool), y_pool, scaler.transform(X_test), y_test


def seed_rows(y: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([rng.choice(np.flatnonzero(y == c)) for c in np.unique(y)])


def make_estimator(model: str, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    if model.startswith("lr"):
        return LogisticRegression(max_iter=1000)
    return SGDClassifier(loss="log_loss", random_state=seed)


@dataclass
class Spec:
    side: str  # "ours" | "modAL"
    dataset: str
    model: str  # lr-refit | sgd-incremental | sgd-replay | sgd-partial | sgd-refit
    strategy: str
    batch: int = 1
    diversity: float = 0.0
    seed: int = 0
    max_labels: int = 200


@dataclass
class Result:
    spec: Spec
    curve: dict[int, float]  # labels -> test accuracy
    full_accuracy: float
    query_ms: list[float] = field(default_factory=list)
    teach_ms: list[float] = field(default_factory=list)


def full_pool_accuracy(model: str, dataset: str, seed: int) -> float:
    X, y, Xt, yt = load_problem(dataset, seed)
    return float((make_estimator(model, seed).fit(X, y).predict(Xt) == yt).mean())


def active_loop(
    spec: Spec,
    query: Callable[[np.ndarray, int], np.ndarray],
    teach: Callable[[np.ndarray, np.ndarray], None],
    predict: Callable[[np.ndarray], np.ndarray],
    start: Callable[[np.ndarray, np.ndarray], None],
) -> Result:
    X, y, Xt, yt = load_problem(spec.dataset, spec.seed)
    labeled = np.zeros(len(y), dtype=bool)
    first = seed_rows(y, spec.seed)
    labeled[first] = True
    start(X[first], y[first])
    curve = {int(labeled.sum()): float((predict(Xt) == yt).mean())}
    result = Result(spec, curve, full_pool_accuracy(spec.model, spec.dataset, spec.seed))
    while labeled.sum() < spec.max_labels:
        available = np.flatnonzero(~labeled)
        started = time.perf_counter()
        chosen = np.asarray(query(X[available], spec.batch)).reshape(-1)
        result.query_ms.append((time.perf_counter() - started) * 1e3)
        for i in available[chosen][: spec.max_labels - int(labeled.sum())]:
            started = time.perf_counter()
            teach(X[[i]], y[[i]])
            result.teach_ms.append((time.perf_counter() - started) * 1e3)
            labeled[i] = True
            curve[int(labeled.sum())] = float((predict(Xt) == yt).mean())
    return result


def run_in_pool(
    runner: Callable[[Spec], Result],
    specs: list[Spec],
    jobs: int,
    log: Callable[[str], None],
    save: Callable[[Result], None] = lambda result: None,
) -> list[Result]:
    results: list[Result] = []
    started = time.perf_counter()
    with get_context("fork").Pool(jobs) as pool:
        for k, result in enumerate(pool.imap_unordered(runner, specs), 1):
            results.append(result)
            save(result)
            if k % max(1, len(specs) // 10) == 0 or k == len(specs):
                log(f"  {k}/{len(specs)} runs, {time.perf_counter() - started:.0f} s")
    return results


# --- our side --------------------------------------------------------------------------------


OUR_STRATEGIES = {
    "random": "random",
    "least confidence": "least_confidence",
    "margin": "margin",
    "entropy": "entropy",
    "committee (vote entropy)": "vote_entropy",
    "committee (KL)": "kl_consensus",
}
# committees cost 5 models per label: one committee row per model (vote entropy is the
# one modAL has too)
SKIP = {("lr-refit", "committee (KL)"), ("sgd-incremental", "committee (vote entropy)")}
DIVERSITY = 0.3


def run_ours(spec: Spec) -> Result:
    from swergio_al.learning import ActiveLearner, Committee

    estimator = make_estimator(spec.model, spec.seed)
    if spec.strategy.startswith("committee"):
        estimator = Committee(estimator, n_members=5, random_state=spec.seed)
    options: dict[str, Any] = {}
    if spec.model.endswith("refit"):
        options["incremental"] = False
    elif spec.model == "sgd-partial":  # the new label alone, once: the baseline to beat
        options.update(replay_size=0, replay_passes=1, refit_every=None)
    elif spec.model == "sgd-replay":
        options["refit_every"] = None
    learner = ActiveLearner(
        estimator,
        OUR_STRATEGIES[spec.strategy],
        classes=np.arange(N_CLASSES[spec.dataset]),
        random_state=spec.seed,
        **options,
    )

    def query(X_pool: np.ndarray, n: int) -> np.ndarray:
        return learner.query(X_pool, n=n, diversity=spec.diversity)[0]

    def teach(X: np.ndarray, y: np.ndarray) -> None:
        learner.teach(X, y)
        if learner.refit_due:  # stands in for the background refit of the feedback loop
            learner.refit()

    return active_loop(spec, query, teach, learner.predict, learner.fit)


# --- modAL's side (runs in its own interpreter) ---------------------------------------------


MODAL_STRATEGIES = ("random", "least confidence", "margin", "entropy", "committee (vote entropy)")


def run_modal(spec: Spec) -> Result:
    from modAL.batch import uncertainty_batch_sampling
    from modAL.disagreement import vote_entropy_sampling
    from modAL.models import ActiveLearner, Committee
    from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling

    warnings.filterwarnings("ignore", category=FutureWarning)  # modAL on sklearn 1.7
    np.random.seed(spec.seed)  # modAL draws from the global generator
    rng = np.random.default_rng(spec.seed)

    def random_sampling(_: Any, X: np.ndarray, n_instances: int = 1) -> np.ndarray:
        return rng.choice(len(X), size=n_instances, replace=False)

    strategies = {
        "random": random_sampling,
        "least confidence": uncertainty_sampling,
        "margin": margin_sampling,
        "entropy": entropy_sampling,
        "ranked batch": uncertainty_batch_sampling,
    }
    box: dict[str, Any] = {}

    def start(X: np.ndarray, y: np.ndarray) -> None:
        if spec.strategy.startswith("committee"):
            members = [
                ActiveLearner(make_estimator(spec.model, spec.seed), X_training=X, y_training=y,
                              bootstrap_init=True)
                for _ in range(5)
            ]
            box["learner"] = Committee(members, query_strategy=vote_entropy_sampling)
        else:
            box["learner"] = ActiveLearner(
                make_estimator(spec.model, spec.seed), strategies[spec.strategy],
                X_training=X, y_training=y,
            )

    def query(X_pool: np.ndarray, n: int) -> np.ndarray:
        return box["learner"].query(X_pool, n_instances=n)[0]

    def teach(X: np.ndarray, y: np.ndarray) -> None:
        if spec.strategy.startswith("committee"):
            box["learner"].teach(X, y, bootstrap=True)
        else:
            box["learner"].teach(X, y)

    return active_loop(spec, query, teach, lambda X: box["learner"].predict(X), start)


def modal_specs(datasets: Iterable[str], seeds: int, max_labels: int) -> list[Spec]:
    specs = []
    for dataset in datasets:
        for seed in range(seeds):
            for strategy in MODAL_STRATEGIES:
                specs.append(Spec("modAL", dataset, "lr-refit", strategy, seed=seed,
                                  max_labels=max_labels))
            specs.append(Spec("modAL", dataset, "lr-refit", "ranked batch", batch=10, seed=seed,
                              max_labels=max_labels))
    return specs


def run_modal_elsewhere(python: str, args: argparse.Namespace) -> list[Result]:
    command = [
        python, os.path.abspath(__file__), "--modal-worker", "--seeds", str(args.seeds),
        "--max-labels", str(args.max_labels), "--datasets", ",".join(args.datasets),
        "--jobs", str(args.jobs),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env)
    return [_result_from_json(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _saver(path: str | None) -> Callable[[Result], None]:
    def save(result: Result) -> None:
        if path:
            with open(path, "a") as f:
                f.write(json.dumps(asdict(result)) + "\n")

    return save


def _load(paths: Iterable[str]) -> list[Result]:
    results: list[Result] = []
    for path in paths:
        with open(path) as f:
            results += [_result_from_json(line) for line in f if line.startswith("{")]
    return results


def _result_from_json(line: str) -> Result:
    raw = json.loads(line)
    raw["spec"] = Spec(**raw["spec"])
    raw["curve"] = {int(k): v for k, v in raw["curve"].items()}
    return Result(**raw)


# --- tables ------------------------------------------------------------------------------


def summarize(results: list[Result]) -> dict[str, Any]:
    curves = [r.curve for r in results]
    start = max(min(c) for c in curves)
    end = min(max(c) for c in curves)
    auc = [float(np.mean([c[n] for n in range(start, end + 1) if n in c])) for c in curves]
    to_95 = []
    for r in results:
        reached = [n for n in sorted(r.curve) if r.curve[n] >= 0.95 * r.full_accuracy]
        to_95.append(reached[0] if reached else np.inf)
    at = {n: float(np.mean([c[n] for c in curves]))
          for n in CHECKPOINTS if all(n in c for c in curves)}
    query_ms = [q for r in results for q in r.query_ms]
    teach_ms = [t for r in results for t in r.teach_ms]
    return {
        "at": at,
        "auc": float(np.mean(auc)),
        "auc_sd": float(np.std(auc)),
        "to_95": float(np.median(to_95)),
        "query_ms": float(np.median(query_ms)) if query_ms else float("nan"),
        "teach_ms": float(np.median(teach_ms)) if teach_ms else float("nan"),
        "full": float(np.mean([r.full_accuracy for r in results])),
        "seeds": len(results),
    }


def label(spec: Spec) -> tuple[str, str, str]:
    batch = "1" if spec.batch == 1 else f"{spec.batch}" + (
        f", diversity {spec.diversity:g}" if spec.diversity else ""
    )
    return spec.side, f"{spec.model}", f"{spec.strategy} [{batch}]"


def group(results: list[Result]) -> dict[tuple[str, tuple[str, str, str]], list[Result]]:
    groups: dict[tuple[str, tuple[str, str, str]], list[Result]] = {}
    for r in results:
        groups.setdefault((r.spec.dataset, label(r.spec)), []).append(r)
    return groups


def print_curves(results: list[Result], out: Callable[[str], None]) -> None:
    groups = group(results)
    for dataset in DATASETS:
        keys = [k for k in groups if k[0] == dataset]
        if not keys:
            continue
        first = summarize(groups[keys[0]])
        out(f"\n### {dataset}: learning curves (mean of {first['seeds']} seeds)\n")
        head = " | ".join(f"acc@{n}" for n in CHECKPOINTS if n in first["at"])
        out(f"| side | model | strategy [batch] | {head} | AUC ± sd | labels to 95% "
            f"| query ms | teach ms |")
        out("|" + "---|" * (7 + len(first["at"])))
        for key in sorted(keys, key=lambda k: (k[1][1], k[1][2], k[1][0])):
            s = summarize(groups[key])
            accs = " | ".join(f"{s['at'][n]:.3f}" for n in CHECKPOINTS if n in first["at"])
            to_95 = "never" if not np.isfinite(s["to_95"]) else f"{s['to_95']:.0f}"
            side, model, strategy = key[1]
            out(f"| {side} | {model} | {strategy} | {accs} | {s['auc']:.3f} ± {s['auc_sd']:.3f} "
                f"| {to_95} | {s['query_ms']:.1f} | {s['teach_ms']:.1f} |")
        fulls = {k[1][1]: summarize(groups[k])["full"] for k in keys}
        out("\nfull-pool accuracy: " + ", ".join(f"{m} {a:.3f}" for m, a in sorted(fulls.items())))


def print_incremental(results: list[Result], out: Callable[[str], None]) -> None:
    groups = group(results)
    for dataset in DATASETS:
        def auc(model: str, groups=groups, dataset=dataset) -> float | None:
            key = (dataset, ("ours", model, "margin [1]"))
            return summarize(groups[key])["auc"] if key in groups else None

        sgd_refit, lr_refit = auc("sgd-refit"), auc("lr-refit")
        if sgd_refit is None or lr_refit is None:
            continue
        out(f"\n### {dataset}: incremental vs refit after every label (margin)\n")
        out("| SGDClassifier mode | AUC | − SGD refit | − LR refit | teach ms (median) |")
        out("|---|---|---|---|---|")
        for model, name in (
            ("sgd-partial", "partial_fit on the new label alone"),
            ("sgd-replay", "partial_fit + replay of earlier labels"),
            ("sgd-incremental", "replay + full refit every 20 labels"),
            ("sgd-refit", "refit from scratch after every label"),
        ):
            key = (dataset, ("ours", model, "margin [1]"))
            if key not in groups:
                continue
            s = summarize(groups[key])
            out(f"| {name} | {s['auc']:.3f} | {s['auc'] - sgd_refit:+.3f} "
                f"| {s['auc'] - lr_refit:+.3f} | {s['teach_ms']:.2f} |")
        out(f"| (LogisticRegression refit after every label) | {lr_refit:.3f} | | | |")


# --- timing at scale ---------------------------------------------------------------------------


def timing(out: Callable[[str], None], repeats: int = 200) -> None:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    from swergio_al.learning import ActiveLearner

    X, y = make_classification(n_samples=20_000, n_features=64, n_informative=32,
                               n_classes=10, random_state=0)
    pool, X_lab, y_lab = X[:10_000], X[10_000:], y[10_000:]
    out("\n### one step at scale (10 000 × 64 pool, 10 000 labeled rows, 10 classes)\n")
    out(f"(one thread; load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: "
        "CPU ms is what the step costs, wall ms what it took on this machine meanwhile)\n")
    out("| model | step | median wall ms | p90 wall ms | median CPU ms |")
    out("|---|---|---|---|---|")
    for name, estimator in (
        ("SGDClassifier incremental", SGDClassifier(loss="log_loss", random_state=0)),
        ("LogisticRegression", LogisticRegression(max_iter=200)),
    ):
        learner = ActiveLearner(estimator, "margin", classes=np.arange(10), random_state=0)
        learner.fit(X_lab[:-repeats], y_lab[:-repeats])
        steps: dict[str, Callable[[int], Any]] = {
            "query(n=1)": lambda i, learner=learner: learner.query(pool, n=1),
            f"query(n=10, diversity={DIVERSITY})":
                lambda i, learner=learner: learner.query(pool, n=10, diversity=DIVERSITY),
            "uncertainty(1 sample)": lambda i, learner=learner: learner.uncertainty(pool[i: i + 1]),
        }
        if learner.incremental_:
            steps["teach(1 label)"] = lambda i, learner=learner: learner.teach(
                X_lab[[-repeats + i]], y_lab[[-repeats + i]])
        for step, call in steps.items():
            ms, cpu = [], []
            for i in range(repeats):
                started, started_cpu = time.perf_counter(), time.process_time()
                call(i)
                ms.append((time.perf_counter() - started) * 1e3)
                cpu.append((time.process_time() - started_cpu) * 1e3)
            out(f"| {name} | {step} | {np.median(ms):.2f} | {np.percentile(ms, 90):.2f} "
                f"| {np.median(cpu):.2f} |")
        if learner.incremental_:
            started_cpu = time.process_time()
            refit = learner.fit_full()
            refit_cpu = (time.process_time() - started_cpu) * 1e3
            out(f"| {name} | fit_full() on {refit.n_labels} labels (background) "
                f"| {refit.seconds * 1e3:.0f} | | {refit_cpu:.0f} |")


# --- main ----------------------------------------------------------------------------------


def our_specs(
    datasets: Iterable[str], seeds: int, max_labels: int, sgd_rows: bool, rows: str
) -> list[Spec]:
    specs = []
    for dataset in datasets:
        for seed in range(seeds):
            if rows == "incremental":
                for model in ("lr-refit", "sgd-partial", "sgd-replay", "sgd-incremental",
                              "sgd-refit"):
                    specs.append(Spec("ours", dataset, model, "margin", seed=seed,
                                      max_labels=max_labels))
                continue
            models = ["lr-refit", "sgd-incremental"] if sgd_rows else ["lr-refit"]
            for model in models:
                for strategy in OUR_STRATEGIES:
                    if (model, strategy) in SKIP:
                        continue
                    specs.append(Spec("ours", dataset, model, strategy, seed=seed,
                                      max_labels=max_labels))
                for diversity in (0.0, DIVERSITY):
                    specs.append(Spec("ours", dataset, model, "margin", batch=10,
                                      diversity=diversity, seed=seed, max_labels=max_labels))
            if sgd_rows:
                for model in ("sgd-partial", "sgd-replay", "sgd-refit"):
                    specs.append(Spec("ours", dataset, model, "margin", seed=seed,
                                      max_labels=max_labels))
    # seed by seed, so an interrupted run with --save still holds whole comparisons
    return sorted(specs, key=lambda s: (s.seed, s.dataset != "digits"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-labels", type=int, default=200)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-sgd", action="store_true", help="LogisticRegression rows only")
    parser.add_argument("--models", help="only these models' rows, e.g. sgd-incremental,sgd-refit")
    parser.add_argument("--rows", choices=("all", "incremental"), default="all",
                        help="incremental: only the incremental-vs-refit rows (margin)")
    parser.add_argument("--no-timing", action="store_true", help="skip the 10 000-row timing")
    parser.add_argument("--timing-only", action="store_true", help="only the 10 000-row timing")
    parser.add_argument("--modal-python", help="interpreter with modAL-python installed")
    parser.add_argument("--save", help="append every run, as it ends, to this JSON-lines file")
    parser.add_argument("--load", action="append", default=[], metavar="FILE",
                        help="print the tables of runs saved with --save (repeatable); run nothing")
    parser.add_argument("--modal-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.datasets = [d for d in args.datasets.split(",") if d]
    for d in args.datasets:
        if d not in DATASETS:
            parser.error(f"unknown dataset {d!r}; choose from {', '.join(DATASETS)}")

    if args.modal_worker:
        specs = modal_specs(args.datasets, args.seeds, args.max_labels)
        log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
        for result in run_in_pool(run_modal, specs, args.jobs, log):
            print(json.dumps(asdict(result)), flush=True)
        return

    def out(text: str) -> None:
        print(text, flush=True)

    started = time.perf_counter()
    if args.timing_only:
        timing(out)
        return
    if args.load:
        results = _load(args.load)
        print_curves(results, out)
        print_incremental(results, out)
        return
    save = _saver(args.save)
    specs = our_specs(args.datasets, args.seeds, args.max_labels, not args.no_sgd, args.rows)
    if args.models:
        specs = [s for s in specs if s.model in args.models.split(",")]
    # runs already in the --save file are not run again: an interrupted run resumes
    done = _load([args.save]) if args.save and os.path.exists(args.save) else []
    done = [r for r in done if r.spec in specs]
    specs = [s for s in specs if s not in [r.spec for r in done]]
    out(f"ours: {len(specs)} runs on {args.jobs} processes ({len(done)} done before)")
    results = done + run_in_pool(run_ours, specs, args.jobs, out, save)
    if args.modal_python:
        out("modAL: running in " + args.modal_python)
        modal = run_modal_elsewhere(args.modal_python, args)
        for result in modal:
            save(result)
        results += modal
    print_curves(results, out)
    print_incremental(results, out)
    if not args.no_timing:
        timing(out)
    out(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
