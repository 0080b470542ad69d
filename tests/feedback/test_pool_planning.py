"""What a PoolLoop's plan keeps, cancels and asks: the Planner on a real learner and pool."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from swergio_al.feedback.planning import Planner
from swergio_al.feedback.pool import Pool
from swergio_al.learning import ActiveLearner
from swergio_al.learning import selection as selection_module


def blobs_pool(n: int = 200) -> tuple[Pool, np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 3.0, -3.0)
    pool = Pool(ids=[f"s{i}" for i in range(n)], inputs=X,
                render=lambda i: {"kind": "table", "content": {}})
    return pool, X, ["ab"[int(v)] for v in y]


def warm_planner(pool: Pool, X: np.ndarray, truth: list[str]) -> tuple[Planner, np.ndarray]:
    learner = ActiveLearner(LogisticRegression(), classes=["a", "b"], random_state=0)
    taught = [int(np.flatnonzero(np.asarray(truth) == c)[0]) for c in "ab"]
    learner.teach(X[taught], [truth[i] for i in taught])
    labeled = np.zeros(len(pool), dtype=bool)
    labeled[taught] = True
    planner = Planner(pool, learner, cold_start="diverse", diversity=0.0, keep=1.0,
                      rng=np.random.default_rng(0))
    assert planner.can_score()
    return planner, labeled


def surest(planner: Planner, X: np.ndarray, labeled: np.ndarray, k: int) -> list[int]:
    """The k unlabeled samples the model is surest of: far outside any plan's ranking."""
    scores = planner.learner.uncertainty(X)
    return [int(i) for i in np.argsort(scores) if not labeled[i]][:k]


def test_a_young_request_stays_where_an_older_one_is_canceled() -> None:
    pool, X, truth = blobs_pool()
    planner, labeled = warm_planner(pool, X, truth)
    old, young = surest(planner, X, labeled, 2)
    pending = {pool.ids[old]: old, pool.ids[young]: young}
    plan = planner.plan(np.flatnonzero(~labeled), 4, 1000, pending, labeled,
                        young={pool.ids[young]})
    assert plan.cancel == [pool.ids[old]]
    assert len(plan.ask) == 3  # the target less the young one that stays
    assert pool.ids[young] in plan.rescore  # re-prioritized with its new score
    assert plan.rescore[pool.ids[young]] == planner.learner.uncertainty(X[[young]])[0]


def test_nothing_is_canceled_within_the_labels_a_cancel_holds_back_of_the_budget() -> None:
    pool, X, truth = blobs_pool()
    planner, labeled = warm_planner(pool, X, truth)
    stale = surest(planner, X, labeled, 4)
    pending = {pool.ids[i]: i for i in stale}
    unlabeled = np.flatnonzero(~labeled)
    assert len(planner.plan(unlabeled, 4, 30, dict(pending), labeled).cancel) == 4
    # 30 labels left, and about 30 may come while a cancel made now still counts
    assert planner.plan(unlabeled, 4, 30, dict(pending), labeled, horizon=30).cancel == []


def test_the_cold_start_clusters_once_per_batch_and_asks_it_in_turn(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pool, _, _ = blobs_pool()
    planner = Planner(pool, None, cold_start="diverse", diversity=0.0, keep=2.0,
                      rng=np.random.default_rng(0))
    calls: list[int] = []
    real = selection_module.representative

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("swergio_al.feedback.planning.representative", counted)
    labeled = np.zeros(len(pool), dtype=bool)
    pending: dict[str | int, int] = {}
    first = planner.plan(np.flatnonzero(~labeled), 4, 1000, pending, labeled)
    batch = [pool.ids[i] for i, *_ in planner.next]
    assert len(first.ask) == 4 and len(batch) == 4
    asked = [sid for sid, *_ in first.ask]
    for sid, *_ in first.ask:
        pending[sid] = pool.index[sid]
    # labels come in one at a time; each plan after one asks the batch's next pick
    for turn in range(4):
        answered = asked[turn]
        labeled[pool.index[answered]] = True
        del pending[answered]
        plan = planner.plan(np.flatnonzero(~labeled), 4, 1000, pending, labeled)
        assert [sid for sid, *_ in plan.ask] == [batch[turn]]
        asked.append(batch[turn])
        pending[batch[turn]] = pool.index[batch[turn]]
    assert len(calls) == 1  # clustered once for all of them
    # ...until it is used up: a new batch
    labeled[pool.index[asked[4]]] = True
    del pending[asked[4]]
    plan = planner.plan(np.flatnonzero(~labeled), 4, 1000, pending, labeled)
    assert len(calls) == 2 and len(plan.ask) == 1 and len(planner.next) == 4
