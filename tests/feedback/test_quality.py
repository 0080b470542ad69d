"""Aggregates and agreement figures against hand-worked values and the `krippendorff` package."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swergio_al.feedback.quality import (
    dawid_skene,
    fleiss_kappa,
    krippendorff_alpha,
    majority_vote,
    weighted_mean,
)

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 observers x 12
# units example; published: nominal 0.743, ordinal 0.815, interval 0.849.
PUBLISHED = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
])


def triples(matrix: np.ndarray) -> list[tuple[int, int, int]]:
    """Reliability data (labelers x samples, NaN = no answer) as (sample, labeler, value)."""
    return [(unit, coder, int(matrix[coder, unit]))
            for coder in range(matrix.shape[0]) for unit in range(matrix.shape[1])
            if not math.isnan(matrix[coder, unit])]


# -- Krippendorff's alpha --------------------------------------------------


def test_alpha_nominal_by_hand() -> None:
    # (a,a) (a,b) (b,b) (b,b): o_aa=2, o_ab=o_ba=1, o_bb=4; n_a=3, n_b=5, n=8.
    # alpha = 1 - (n-1) * (o_ab+o_ba) / (2 n_a n_b) = 1 - 7*2/30 = 8/15
    answers = [(0, "A", "a"), (0, "B", "a"), (1, "A", "a"), (1, "B", "b"),
               (2, "A", "b"), (2, "B", "b"), (3, "A", "b"), (3, "B", "b")]
    assert krippendorff_alpha(answers, "nominal") == pytest.approx(8 / 15)


def test_alpha_interval_and_ordinal_by_hand() -> None:
    # Units (1,1) (1,2) (3,3): o_11=2, o_12=o_21=1, o_33=2; n_1=3, n_2=1, n_3=2, n=6.
    answers = [(0, "A", 1), (0, "B", 1), (1, "A", 1), (1, "B", 2), (2, "A", 3), (2, "B", 3)]
    # interval δ²=(c-k)²: observed 2*1 = 2; expected 2*(3*1*1 + 3*2*4 + 1*2*1) = 58
    # alpha = 1 - 5*2/58 = 24/29
    assert krippendorff_alpha(answers, "interval") == pytest.approx(24 / 29)
    # ordinal δ_ck = (n_c + ... + n_k - (n_c+n_k)/2)²: δ_12 = 2² = 4, δ_13 = 3.5², δ_23 = 1.5²
    # observed 2*4 = 8; expected 2*(3*1*4 + 3*2*12.25 + 1*2*2.25) = 180; 1 - 5*8/180 = 7/9
    assert krippendorff_alpha(answers, "ordinal") == pytest.approx(7 / 9)


@pytest.mark.parametrize(("level", "published"),
                         [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_matches_published_and_package(level: str, published: float) -> None:
    ours = krippendorff_alpha(triples(PUBLISHED), level)  # type: ignore[arg-type]
    assert round(ours, 3) == published
    assert ours == pytest.approx(krippendorff.alpha(reliability_data=PUBLISHED,
                                                    level_of_measurement=level), abs=1e-12)


@settings(max_examples=60)
@given(st.lists(st.lists(st.one_of(st.none(), st.integers(0, 4)), min_size=3, max_size=3),
                min_size=2, max_size=12),
       st.sampled_from(["nominal", "ordinal", "interval"]))
def test_alpha_matches_package_on_any_data(rows: list[list[int | None]], level: str) -> None:
    matrix = np.array([[NAN if v is None else v for v in row] for row in rows]).T
    answers = triples(matrix)
    paired = [u for u in range(matrix.shape[1]) if np.sum(~np.isnan(matrix[:, u])) >= 2]
    values = {v for sample, _, v in answers if sample in paired}
    ours = krippendorff_alpha(answers, level)  # type: ignore[arg-type]
    if len(values) < 2:  # no variation among pairable answers: alpha is undefined
        assert math.isnan(ours)
        return
    theirs = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level,
                                value_domain=sorted({v for _, _, v in answers}))
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_alpha_rejects_unknown_level() -> None:
    with pytest.raises(ValueError, match="level must be one of"):
        krippendorff_alpha([(0, "A", 1)], "ratio")  # type: ignore[arg-type]


# -- Fleiss' kappa ---------------------------------------------------------


def test_fleiss_kappa_by_hand() -> None:
    # Three raters, counts (3,0) (2,1) (0,3): P_i = 1, 1/3, 1 -> mean 7/9;
    # p = (5/9, 4/9), P_e = 41/81; kappa = (63/81 - 41/81) / (40/81) = 0.55
    answers = [(0, r, "yes") for r in "ABC"] + [(1, "A", "yes"), (1, "B", "yes"),
                                                (1, "C", "no")] + [(2, r, "no") for r in "ABC"]
    assert fleiss_kappa(answers, ["yes", "no"]) == pytest.approx(0.55)


def test_fleiss_kappa_textbook_table() -> None:
    # Fleiss (1971) style example as on Wikipedia: 10 subjects, 14 raters, 5 categories.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    answers = []
    for subject, counts in enumerate(table):
        rater = 0
        for category, count in enumerate(counts):
            for _ in range(count):
                answers.append((subject, rater, category))
                rater += 1
    assert round(fleiss_kappa(answers, range(5)), 3) == 0.210  # type: ignore[arg-type]


def test_fleiss_kappa_undefined_without_pairs() -> None:
    assert math.isnan(fleiss_kappa([(0, "A", 1), (1, "A", 0)], [0, 1]))


# -- aggregates ------------------------------------------------------------


def test_majority_vote_ties_go_to_the_first_choice() -> None:
    result = majority_vote([(1, "A", "b"), (1, "B", "a"), (2, "A", "b"), (2, "B", "b"),
                            (2, "C", "a")], ["a", "b"])
    assert result.values == ["a", "b"]
    assert result.confidence.tolist() == pytest.approx([0.5, 2 / 3])


def test_answers_outside_the_choices_are_refused() -> None:
    with pytest.raises(ValueError, match="not one of the choices"):
        majority_vote([(1, "A", True)], [1, 0])  # True == 1, but it is no such choice


def test_dawid_skene_one_iteration_by_hand() -> None:
    """Two labelers, two classes, Laplace prior (strength 2, accuracy 0.5 = one
    pseudo-answer per cell); s1 A0 B0, s2 A1 B1, s3 A0 B1, s4 B1 alone.

    Start (vote shares): s1 (1, 0), s2 (0, 1), s3 (.5, .5), s4 (0, 1).
    M-step: class prior = (1.5+1, 2.5+1)/(4+2) = (2.5/6, 3.5/6).
      A | true 0: (1+1.5, 1+0) -> (5/7, 2/7);  true 1: (1+.5, 1+1) -> (3/7, 4/7)
      B | true 0: (1+1, 1+.5) -> (4/7, 3/7);   true 1: (1+0, 1+2.5) -> (2/9, 7/9)
    E-step: s3 ∝ (2.5/6 * 5/7 * 3/7, 3.5/6 * 3/7 * 7/9) = (37.5/294, 73.5/378)
            s4 ∝ (2.5/6 * 3/7, 3.5/6 * 7/9) = (7.5/42, 24.5/54)
    """
    answers = [("s1", "A", 0), ("s1", "B", 0), ("s2", "A", 1), ("s2", "B", 1),
               ("s3", "A", 0), ("s3", "B", 1), ("s4", "B", 1)]
    result = dawid_skene(answers, [0, 1], prior_accuracy=0.5, prior_strength=2.0, max_iter=1)
    assert result.posterior is not None
    s3 = np.array([37.5 / 294, 73.5 / 378])
    s4 = np.array([7.5 / 42, 24.5 / 54])
    assert result.posterior[2] == pytest.approx(s3 / s3.sum(), abs=1e-6)
    assert result.posterior[3] == pytest.approx(s4 / s4.sum(), abs=1e-6)
    assert result.values == [0, 1, 1, 1]
    assert result.confidence[2] == pytest.approx(s3[1] / s3.sum(), abs=1e-6)


def simulate(accuracies: list[float], *, samples: int = 300, overlap: int = 3,
             classes: int = 3, seed: int = 0) -> tuple[list[tuple[int, int, int]], np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(classes, size=samples)
    answers = []
    for i in range(samples):
        for j in rng.choice(len(accuracies), size=overlap, replace=False):
            right = rng.random() < accuracies[j]
            wrong = (truth[i] + rng.integers(1, classes)) % classes
            answers.append((i, int(j), int(truth[i] if right else wrong)))
    return answers, truth


ACCURACIES = [0.95, 0.9, 0.85, 0.7, 0.55, 1 / 3]


def test_dawid_skene_beats_the_vote_and_finds_each_accuracy() -> None:
    answers, truth = simulate(ACCURACIES, seed=3)
    vote = majority_vote(answers, [0, 1, 2])
    ds = dawid_skene(answers, [0, 1, 2])
    order = np.argsort(ds.samples)
    right_vote = np.mean(np.asarray(vote.values)[order] == truth)
    right_ds = np.mean(np.asarray(ds.values)[order] == truth)
    assert right_ds >= right_vote + 0.02
    assert ds.accuracy is not None
    estimated = ds.accuracy[np.argsort(ds.labelers)]
    assert np.mean(np.abs(estimated - ACCURACIES)) < 0.06


def test_gold_accuracy_seeds_and_a_single_answer_still_has_a_posterior() -> None:
    answers = [(0, "good", "x"), (1, "bad", "y")]
    result = dawid_skene(answers, ["x", "y"], gold_accuracy={"good": 0.95, "bad": 0.55})
    assert result.values[0] == "x" and result.confidence[0] > 0.85  # the good one is believed
    assert result.confidence[1] < 0.65  # a near coin-flipper alone barely moves it
    assert result.accuracy is not None and result.accuracy[0] > result.accuracy[1]


def test_weighted_mean_removes_bias_and_trusts_the_precise() -> None:
    rng = np.random.default_rng(1)
    truth = rng.uniform(0, 10, size=200)
    bias = {"high": 1.5, "low": -1.5, "steady": 0.0, "noisy": 0.0}
    noise = {"high": 0.2, "low": 0.2, "steady": 0.2, "noisy": 3.0}
    answers = [(i, name, float(truth[i] + bias[name] + rng.normal(0, noise[name])))
               for i in range(200) for name in bias]
    result = weighted_mean(answers)
    assert result.bias is not None and result.spread is not None
    by_name = dict(zip(result.labelers, result.bias, strict=True))
    assert by_name["high"] == pytest.approx(1.5, abs=0.15)
    assert by_name["low"] == pytest.approx(-1.5, abs=0.15)
    spread = dict(zip(result.labelers, result.spread, strict=True))
    assert spread["noisy"] > 5 * spread["steady"]
    plain = np.array([np.mean([a for s, _, a in answers if s == i]) for i in range(200)])
    ours = np.asarray(result.values)
    assert np.mean(np.abs(ours - truth)) < 0.5 * np.mean(np.abs(plain - truth))
    assert np.all(result.confidence < 0.2)


def test_weighted_mean_of_single_answers_is_the_answer() -> None:
    result = weighted_mean([(0, "A", 3.0), (1, "B", 4.0)])
    assert result.values == pytest.approx([3.0, 4.0])
    assert result.of(1)[0] == pytest.approx(4.0)


def test_empty_answers() -> None:
    assert dawid_skene([], [0, 1]).values == []
    assert weighted_mean([]).values == []
    assert math.isnan(krippendorff_alpha([], "nominal"))


def test_a_warm_start_converges_to_the_same_aggregate_in_fewer_iterations() -> None:
    answers, _ = simulate(ACCURACIES, seed=5)
    earlier = dawid_skene(answers[:-30], [0, 1, 2], tol=1e-4)
    cold = dawid_skene(answers, [0, 1, 2], tol=1e-4)
    warm = dawid_skene(answers, [0, 1, 2], tol=1e-4, warm_start=earlier)
    assert warm.values == cold.values
    assert warm.iterations < cold.iterations


def test_agreement_counts_only_samples_someone_else_answered_too() -> None:
    from swergio_al.feedback.consensus import Consensus, Settings

    consensus = Consensus(Settings("majority", ["a", "b"]))
    for sample in range(4):  # three answers each; cid is out of line on two
        consensus.add(f"ann-{sample}", sample, "ann", "a")
        consensus.add(f"bob-{sample}", sample, "bob", "a")
        consensus.add(f"cid-{sample}", sample, "cid", "a" if sample < 2 else "b")
    for sample in range(4, 8):  # answers nobody else gave: each its own aggregate
        consensus.add(f"solo-{sample}", sample, "solo", "b")
        consensus.add(f"ann-{sample}", sample + 100, "ann", "b")
    per = consensus.report()["per_labeler"]
    assert per["cid"]["agreement"] == 0.5
    assert per["ann"]["agreement"] == 1.0 and per["ann"]["answers"] == 8
    assert per["solo"]["agreement"] is None  # was 1.0: agreeing with itself
