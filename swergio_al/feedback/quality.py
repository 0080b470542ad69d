"""Label quality in plain numpy: aggregates of several people's answers, and how far they agree.

Answers are `(sample, labeler, value)` triples. For choice answers the
aggregate is a majority vote or Dawid–Skene (EM over one confusion matrix per
labeler, smoothed by a Dirichlet prior so a sample with a single answer still
gets a posterior); for ratings and numbers it is a mean weighted by each
labeler's estimated precision after removing their estimated bias. Every
aggregate carries a confidence: the posterior probability of the chosen class,
or the standard error of the weighted mean.

Agreement: Krippendorff's alpha (nominal, ordinal, interval; any number of
answers per sample, missing ones allowed) and Fleiss' kappa (choices).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Answer = tuple[Hashable, Hashable, Any]  # (sample, labeler, value)
Level = Literal["nominal", "ordinal", "interval"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval")


@dataclass(frozen=True)
class Aggregate:
    """The best estimate of each sample's answer, and what was learned about the labelers."""

    samples: list[Hashable]
    values: list[Any]  # one per sample, in `samples` order
    confidence: NDArray[np.float64]  # posterior of the value (choices) or standard error
    labelers: list[Hashable]
    accuracy: NDArray[np.float64] | None = None  # estimated, per labeler (choices)
    posterior: NDArray[np.float64] | None = None  # samples x choices
    confusion: NDArray[np.float64] | None = None  # labelers x true x answered
    bias: NDArray[np.float64] | None = None  # per labeler (numbers)
    spread: NDArray[np.float64] | None = None  # per labeler standard deviation (numbers)
    iterations: int = 0
    _index: dict[Hashable, int] = field(default_factory=dict, repr=False, compare=False)

    def of(self, sample: Hashable) -> tuple[Any, float]:
        """(value, confidence) of one sample."""
        if not self._index:
            self._index.update((s, i) for i, s in enumerate(self.samples))
        i = self._index[sample]
        return self.values[i], float(self.confidence[i])


@dataclass(frozen=True)
class _Coded:
    """Answers as integer codes: sample i, labeler j, class / value v."""

    samples: list[Hashable]
    labelers: list[Hashable]
    item: NDArray[np.intp]
    rater: NDArray[np.intp]
    value: NDArray[Any]


def _code(answers: Iterable[Answer], choices: Sequence[Any] | None) -> _Coded:
    samples: dict[Hashable, int] = {}
    labelers: dict[Hashable, int] = {}
    item, rater, value = [], [], []
    lookup = None if choices is None else _choice_lookup(choices)
    for sample, labeler, answer in answers:
        item.append(samples.setdefault(sample, len(samples)))
        rater.append(labelers.setdefault(labeler, len(labelers)))
        if lookup is None:
            value.append(float(answer))
        else:
            key = (type(answer), answer)
            if key not in lookup:
                raise ValueError(f"answer {answer!r:.80} is not one of the choices "
                                 f"{choices!r:.200}")
            value.append(lookup[key])
    return _Coded(list(samples), list(labelers), np.asarray(item, dtype=np.intp),
                  np.asarray(rater, dtype=np.intp),
                  np.asarray(value, dtype=float if lookup is None else np.intp))


def _choice_lookup(choices: Sequence[Any]) -> dict[tuple[type, Any], int]:
    # Keyed by type as well: `True == 1` in Python, but they are different answers.
    return {(type(c), c): k for k, c in enumerate(choices)}


def _votes(coded: _Coded, n_classes: int,
           weight: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """samples x classes: (weighted) counts of the answers."""
    votes = np.zeros((len(coded.samples), n_classes))
    w = np.ones(len(coded.item)) if weight is None else weight[coded.rater]
    np.add.at(votes, (coded.item, coded.value), w)
    return votes


def _decide(posterior: NDArray[np.float64]) -> NDArray[np.intp]:
    # Ties go to the first choice in the schema's order: deterministic, so a store
    # restart gives the same aggregates.
    return np.argmax(posterior, axis=1)


def majority_vote(answers: Iterable[Answer], choices: Sequence[Any]) -> Aggregate:
    """Each sample's most frequent answer; confidence = its share of the votes."""
    coded = _code(answers, choices)
    if not coded.samples:
        return Aggregate([], [], np.zeros(0), [])
    votes = _votes(coded, len(choices))
    share = votes / np.maximum(votes.sum(axis=1, keepdims=True), 1)
    chosen = _decide(share)
    return Aggregate(coded.samples, [choices[k] for k in chosen],
                     share[np.arange(len(chosen)), chosen], coded.labelers, posterior=share)


def dawid_skene(answers: Iterable[Answer], choices: Sequence[Any], *,
                gold_accuracy: Mapping[Any, float] | None = None,
                prior_accuracy: float = 0.7, prior_strength: float = 2.0,
                max_iter: int = 100, tol: float = 1e-6,
                warm_start: Aggregate | None = None) -> Aggregate:
    """Dawid–Skene EM: each labeler answers true class k with their own distribution.

    Each row of each labeler's confusion matrix has a Dirichlet prior worth
    `prior_strength` pseudo-answers: `prior_accuracy` of them on the diagonal,
    the rest spread evenly. A labeler in `gold_accuracy` (measured on gold
    questions) gets that accuracy as their prior instead, and starts the EM
    with a vote weighted by it. `warm_start` (an earlier result on fewer answers)
    starts the EM from its posteriors: after a few new answers it converges in a
    few iterations instead of dozens.
    """
    if len(choices) < 2:
        raise ValueError("Dawid–Skene needs at least two choices")
    if not 0 < prior_accuracy < 1 or prior_strength <= 0:
        raise ValueError("prior_accuracy must be in (0, 1) and prior_strength positive")
    coded = _code(answers, choices)
    n_classes, n_raters = len(choices), len(coded.labelers)
    if not coded.samples:
        return Aggregate([], [], np.zeros(0), [], accuracy=np.zeros(0))
    known = np.full(n_raters, prior_accuracy)
    for j, labeler in enumerate(coded.labelers):
        if gold_accuracy and labeler in gold_accuracy:
            known[j] = float(np.clip(gold_accuracy[labeler], 0.01, 0.99))
    prior = _confusion_prior(known, n_classes, prior_strength)
    # Start from the vote shares; with gold, each vote weighted by the labeler's log
    # odds of being right (a labeler no better than chance barely counts).
    weight = None
    if gold_accuracy:
        weight = np.maximum(np.log(known * (n_classes - 1) / (1 - known)), 0.05)
    posterior = _normalise(_votes(coded, n_classes, weight) + 1e-9)
    if warm_start is not None and warm_start.posterior is not None and \
            warm_start.posterior.shape[1] == n_classes:
        earlier = {s: i for i, s in enumerate(warm_start.samples)}
        for i, sample in enumerate(coded.samples):
            if sample in earlier:
                posterior[i] = warm_start.posterior[earlier[sample]]
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        class_prior, confusion = _m_step(coded, posterior, prior, n_classes)
        updated = _e_step(coded, class_prior, confusion)
        change = float(np.max(np.abs(updated - posterior)))
        posterior = updated
        if change < tol:
            break
    class_prior, confusion = _m_step(coded, posterior, prior, n_classes)
    chosen = _decide(posterior)
    accuracy = np.einsum("k,jkk->j", class_prior, confusion)
    return Aggregate(coded.samples, [choices[k] for k in chosen],
                     posterior[np.arange(len(chosen)), chosen], coded.labelers,
                     accuracy=accuracy, posterior=posterior, confusion=confusion,
                     iterations=iterations)


def _confusion_prior(accuracy: NDArray[np.float64], n_classes: int,
                     strength: float) -> NDArray[np.float64]:
    """labelers x true x answered Dirichlet pseudo-counts."""
    off = strength * (1 - accuracy) / (n_classes - 1)
    prior = np.repeat(off[:, None, None], n_classes, axis=1).repeat(n_classes, axis=2)
    diagonal = np.arange(n_classes)
    prior[:, diagonal, diagonal] = (strength * accuracy)[:, None]
    return prior


def _m_step(coded: _Coded, posterior: NDArray[np.float64], prior: NDArray[np.float64],
            n_classes: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Class prior and confusion matrices (posterior means) from soft labels."""
    class_prior = (posterior.sum(axis=0) + 1.0) / (len(posterior) + n_classes)
    counts = prior.copy()
    # counts[j, k, v] += posterior[i, k] for each answer (i, j, v)
    np.add.at(counts.transpose(0, 2, 1), (coded.rater, coded.value), posterior[coded.item])
    return class_prior, counts / counts.sum(axis=2, keepdims=True)


def _e_step(coded: _Coded, class_prior: NDArray[np.float64],
            confusion: NDArray[np.float64]) -> NDArray[np.float64]:
    """Posterior over the true class of each sample, in log space."""
    log_post = np.tile(np.log(class_prior), (len(coded.samples), 1))
    np.add.at(log_post, coded.item, np.log(confusion[coded.rater, :, coded.value]))
    log_post -= log_post.max(axis=1, keepdims=True)
    return _normalise(np.exp(log_post))


def _normalise(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    return rows / rows.sum(axis=1, keepdims=True)


def weighted_mean(answers: Iterable[Answer], *, prior_answers: float = 2.0,
                  max_iter: int = 50, tol: float = 1e-9) -> Aggregate:
    """Numbers and ratings: answer = truth + the labeler's bias + noise of their own spread.

    Alternates: each sample's mean of the answers minus their labelers' biases,
    weighted by 1/spread²; each labeler's bias (shrunk towards 0, centred so
    they sum to 0) and spread (shrunk towards the room's by `prior_answers`
    pseudo-answers). Confidence is the standard error of each sample's mean.
    """
    coded = _code(answers, None)
    x, item, rater = coded.value, coded.item, coded.rater
    n_items, n_raters = len(coded.samples), len(coded.labelers)
    if not n_items:
        return Aggregate([], [], np.zeros(0), [], bias=np.zeros(0), spread=np.zeros(0))
    per_rater = np.bincount(rater, minlength=n_raters).astype(float)
    plain = np.bincount(item, weights=x, minlength=n_items) / np.bincount(item, minlength=n_items)
    room_var = float(np.var(x - plain[item])) if len(x) > n_items else 0.0
    room_var = max(room_var, 1e-6 * max(float(np.var(x)), 1.0))
    bias, var = np.zeros(n_raters), np.full(n_raters, room_var)
    mean = plain
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        w = 1.0 / var[rater]
        mean_new = np.bincount(item, weights=w * (x - bias[rater]), minlength=n_items) / \
            np.bincount(item, weights=w, minlength=n_items)
        residual = x - mean_new[item]
        bias_new = np.bincount(rater, weights=residual, minlength=n_raters) / \
            (per_rater + prior_answers)
        bias_new -= np.average(bias_new, weights=per_rater)
        squared = np.bincount(rater, weights=(residual - bias_new[rater]) ** 2,
                              minlength=n_raters)
        var = (squared + prior_answers * room_var) / (per_rater + prior_answers)
        change = max(float(np.max(np.abs(mean_new - mean))),
                     float(np.max(np.abs(bias_new - bias))))
        mean, bias = mean_new, bias_new
        if change < tol:
            break
    error = 1.0 / np.sqrt(np.bincount(item, weights=1.0 / var[rater], minlength=n_items))
    return Aggregate(coded.samples, [float(m) for m in mean], error, coded.labelers,
                     bias=bias, spread=np.sqrt(var), iterations=iterations)


# -- agreement -------------------------------------------------------------


def krippendorff_alpha(answers: Iterable[Answer], level: Level = "nominal", *,
                       order: Sequence[Any] | None = None) -> float:
    """Krippendorff's alpha over the samples with two or more answers (NaN if undefined).

    `level`: nominal (any values), ordinal (values ranked by `order`, default
    sorted), interval (numbers). 1 is perfect agreement, 0 what chance gives.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r:.40}")
    triples = list(answers)
    values = _value_domain([v for _, _, v in triples], level, order)
    coded = _code(triples, values if level != "interval" else None)
    codes = coded.value if level != "interval" else \
        np.searchsorted(np.asarray(values, dtype=float), coded.value)
    counts = np.zeros((len(coded.samples), len(values)))
    np.add.at(counts, (coded.item, codes), 1.0)
    per_unit = counts.sum(axis=1)
    paired = per_unit >= 2
    counts, per_unit = counts[paired], per_unit[paired]
    if not len(counts):
        return float("nan")
    # Coincidence matrix: every ordered pair of answers within a sample, 1/(m-1) each.
    weight = 1.0 / (per_unit - 1)
    coincidence = (counts * weight[:, None]).T @ counts - np.diag(weight @ counts)
    marginal = coincidence.sum(axis=1)
    total = marginal.sum()
    delta = _distance(values, marginal, level)
    expected = float(marginal @ delta @ marginal)
    if expected == 0:
        return float("nan")
    return 1.0 - (total - 1) * float(np.sum(coincidence * delta)) / expected


def _value_domain(seen: list[Any], level: Level, order: Sequence[Any] | None) -> list[Any]:
    if level == "interval":
        return sorted({float(v) for v in seen})
    if order is not None:
        return list(order)
    distinct = list({(type(v), v): v for v in seen}.values())
    if level == "ordinal":
        return sorted(distinct)
    return distinct


def _distance(values: list[Any], marginal: NDArray[np.float64],
              level: Level) -> NDArray[np.float64]:
    """Squared difference δ² between every two values."""
    n = len(values)
    if level == "nominal":
        return 1.0 - np.eye(n)
    if level == "interval":
        v = np.asarray(values, dtype=float)
        return (v[:, None] - v[None, :]) ** 2
    # Ordinal: how many pairable values lie between the two ranks.
    cumulative = np.concatenate([[0.0], np.cumsum(marginal)])
    low = np.minimum.outer(np.arange(n), np.arange(n))
    high = np.maximum.outer(np.arange(n), np.arange(n))
    between = cumulative[high + 1] - cumulative[low]
    return (between - (marginal[:, None] + marginal[None, :]) / 2) ** 2


def fleiss_kappa(answers: Iterable[Answer], choices: Sequence[Any]) -> float:
    """Fleiss' kappa over the samples with two or more answers (NaN if undefined).

    With an equal number of answers per sample it is the textbook figure; with
    unequal numbers each sample's agreement is averaged the same way.
    """
    coded = _code(answers, choices)
    counts = _votes(coded, len(choices))
    per_unit = counts.sum(axis=1)
    counts, per_unit = counts[per_unit >= 2], per_unit[per_unit >= 2]
    if not len(counts):
        return float("nan")
    observed = float(np.mean(((counts * (counts - 1)).sum(axis=1)) / (per_unit * (per_unit - 1))))
    share = counts.sum(axis=0) / per_unit.sum()
    chance = float(share @ share)
    if chance == 1.0:
        return float("nan")
    return (observed - chance) / (1.0 - chance)
