"""The music demo's pure parts: genome decoding, WAV synth, features, listener, GA."""

from __future__ import annotations

import io
import json
import wave

import numpy as np
import pytest

from swergio_al.demos.music.features import FEATURE_NAMES, genome_features, melody_features
from swergio_al.demos.music.ga import GeneticAlgorithm
from swergio_al.demos.music.listener import (
    SimulatedListener,
    checked_rating,
    load_listener,
    taste,
)
from swergio_al.demos.music.melody import decode, encode_steps, random_genomes, steps_of
from swergio_al.demos.music.synth import render, wav_bytes, write_wav

REST = 8
# A tune by hand: scale steps, a returning motif, a breath, ending on the tonic.
TUNE = [0, 1, 2, 0, 0, 1, 2, REST, 2, 3, 4, REST, 4, 3, 2, 1,
        0, 1, 2, 0, 0, 1, 2, REST, 4, 3, 2, 1, 1, 0, 0, REST]


def feature(melody_steps: list[int], name: str) -> float:
    return float(melody_features(decode(encode_steps(melody_steps)))[FEATURE_NAMES.index(name)])


def test_steps_are_four_bits_most_significant_first() -> None:
    genome = [0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1]
    assert steps_of(genome).tolist() == [1, 8, 15]
    assert encode_steps([1, 8, 15]).tolist() == genome


def test_degrees_rests_and_held_notes() -> None:
    melody = decode(encode_steps([0, 0, 2, REST, 12, 7, 4, 4]))
    assert melody.pitches == (60, 64, None, 72, 67)  # C, E, rest (8 and 12 merge), C', G
    assert melody.durations == (2.0, 1.0, 2.0, 1.0, 2.0)
    assert melody.starts == (0.0, 2.0, 3.0, 5.0, 6.0)
    assert melody.velocities[0] == 100 and melody.velocities[2] == 0
    content = melody.content()
    assert content["notes"] == [60, 64, None, 72, 67]  # a rest is null, as web/melody.js reads
    assert content["durations"] == [2.0, 1.0, 2.0, 1.0, 2.0]
    assert content["starts"] == [0.0, 2.0, 3.0, 5.0, 6.0]
    assert json.loads(json.dumps(content)) == content
    assert content["bpm"] == 120.0 and content["beats"] == 8.0


def test_default_genome_is_eight_bars_of_four() -> None:
    genome = random_genomes(1, random_state=3)[0]
    assert genome.size == 128
    assert decode(genome).beats == 32.0


def test_key_and_scale() -> None:
    minor_d = decode(encode_steps([0, 2, 7]), key="D", scale="minor")
    assert minor_d.pitches == (62, 65, 74)


@pytest.mark.parametrize(("genome", "message"), [
    ([0, 1, 0], "multiple of 4"),
    ([0, 1, 2, 1], "only 0 and 1"),
    ([[0, 1, 0, 1]], "one-dimensional"),
    ([], "multiple of 4"),
])
def test_bad_genomes_are_refused_clearly(genome: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode(genome)


def test_unknown_key_or_scale_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        decode(encode_steps([0]), scale="lydian-ish")
    with pytest.raises(ValueError, match="choose one of"):
        decode(encode_steps([0]), key="H")


def test_wav_is_valid_and_silent_in_rests() -> None:
    melody = decode(encode_steps([0, REST, 4, 4]), bpm=120.0)
    data = wav_bytes(melody, sample_rate=8000)
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert frames.size == 4 * 0.5 * 8000  # four beats at 120 bpm
    beat = 4000
    assert np.abs(frames[:beat]).max() > 10000  # the first note sounds
    assert np.abs(frames[beat:2 * beat]).max() == 0  # the rest is silent
    assert np.abs(frames[2 * beat:]).max() > 10000


def test_write_wav_to_a_path(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "tune.wav"
    write_wav(decode(encode_steps(TUNE)), path, sample_rate=8000)
    with wave.open(str(path)) as wav:
        assert wav.getnframes() == round(32 * 0.5 * 8000)


def test_all_rests_render_silence() -> None:
    samples = render(decode(encode_steps([REST] * 4)), sample_rate=8000)
    assert samples.size == 16000 and not samples.any()


def test_features_are_bounded_and_named() -> None:
    X = genome_features(random_genomes(40, random_state=1))
    assert X.shape == (40, 128 + len(FEATURE_NAMES))
    assert ((X >= 0) & (X <= 1)).all()
    assert genome_features(random_genomes(2, random_state=1), include_bits=False).shape == (
        2, len(FEATURE_NAMES))


def test_features_measure_what_they_say() -> None:
    assert feature([0, 1, 2, 3], "stepwise_ratio") == 1.0
    assert feature([0, 7, 0, 7], "leap_ratio") == 1.0
    assert feature([0, REST, REST, REST], "rest_ratio") == 0.75
    assert feature([0, 1, 2, 3, 0, 1, 2, 3], "bar_repetition") == 1.0
    assert feature([1, 2, 3, 0], "ends_on_tonic") == 1.0
    assert feature([1, 2, 3, 5], "ends_on_tonic") == 0.0
    assert feature([0, 2, 4, 1], "chord_tone_ratio") == 0.75
    assert feature([REST] * 4, "range") == 0.0  # no notes: no crash


def test_listener_prefers_a_tune_to_noise() -> None:
    noise = [taste(decode(g)) for g in random_genomes(50, random_state=2)]
    tune = taste(decode(encode_steps(TUNE)))
    assert 0 <= min(noise) and max(noise) <= 5
    assert tune > max(noise)
    assert tune > 3.5


def test_simulated_listener_is_seeded_whole_stars() -> None:
    melodies = [decode(g) for g in random_genomes(30, random_state=4)]
    first = [SimulatedListener(noise=0.8, random_state=7)(m) for m in melodies]
    again = [SimulatedListener(noise=0.8, random_state=7)(m) for m in melodies]
    assert first == again
    assert all(r in {0.0, 1.0, 2.0, 3.0, 4.0, 5.0} for r in first)
    listener = SimulatedListener(noise=0.0)
    assert listener(melodies[0]) == round(taste(melodies[0]))


def test_load_listener_by_name() -> None:
    listener = load_listener("swergio_al.demos.music.listener:taste")
    assert listener is taste
    assert isinstance(load_listener("simulated"), SimulatedListener)


@pytest.mark.parametrize(("spec", "message"), [
    ("taste", "module:function"),
    ("no_such_module_xyz:f", "cannot import"),
    ("swergio_al.demos.music.listener:nothing", "no attribute"),
    ("swergio_al.demos.music.listener:MAX_RATING", "not callable"),
])
def test_load_listener_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_listener(spec)


def test_checked_rating_refuses_nonsense() -> None:
    melody = decode(encode_steps(TUNE))
    assert checked_rating(lambda m: 4, melody) == 4.0
    with pytest.raises(ValueError, match=r"0\.\.5"):
        checked_rating(lambda m: 7, melody)
    with pytest.raises(TypeError, match="number"):
        checked_rating(lambda m: "good", melody)  # type: ignore[arg-type, return-value]


def test_ga_climbs_onemax_and_keeps_the_elite() -> None:
    ga = GeneticAlgorithm(population_size=30, genome_length=64, random_state=0)
    population = ga.initialize()
    start = population.sum(axis=1).mean()
    best = []
    for _ in range(30):
        fitness = population.sum(axis=1)
        best.append(fitness.max())
        population = ga.step(population, fitness)
    assert population.sum(axis=1).mean() > start + 12
    assert best == sorted(best)  # elitism: the best never gets worse
    assert ga.generation_ == 30


def test_ga_is_seeded() -> None:
    def run(seed: int) -> np.ndarray:
        ga = GeneticAlgorithm(population_size=10, genome_length=32, random_state=seed)
        population = ga.initialize()
        for _ in range(5):
            population = ga.step(population, population[:, :8].sum(axis=1))
        return population

    assert (run(5) == run(5)).all()
    assert (run(5) != run(6)).any()


def test_ga_refuses_bad_use() -> None:
    ga = GeneticAlgorithm(population_size=4, genome_length=8)
    with pytest.raises(RuntimeError, match="initialize"):
        ga.step(np.zeros((4, 8)), np.zeros(4))
    population = ga.initialize()
    with pytest.raises(ValueError, match="finite"):
        ga.step(population, [1.0, 2.0, float("nan"), 0.0])
    with pytest.raises(ValueError, match="shape"):
        ga.step(population[:3], np.zeros(3))
    with pytest.raises(ValueError, match="elitism"):
        GeneticAlgorithm(population_size=4, elitism=4).initialize()


def test_bayesian_linear_model_learns_and_shrinks_its_doubt() -> None:
    from swergio_al.demos.music.model import BayesianLinearRegression

    rng = np.random.default_rng(0)
    X = rng.random((200, 3))
    y = 1.0 + X @ np.array([2.0, -1.0, 0.5]) + rng.normal(0, 0.1, 200)
    few = BayesianLinearRegression(noise=0.01).fit(X[:5], y[:5])
    many = BayesianLinearRegression(noise=0.01).fit(X, y)
    _, std_few = few.predict(X, return_std=True)
    _, std_many = many.predict(X, return_std=True)
    assert std_many.mean() < std_few.mean() / 3
    assert np.abs(many.predict(X) - y).mean() < 0.15
    stepwise = BayesianLinearRegression(noise=0.01).partial_fit(X[:100], y[:100])
    stepwise.partial_fit(X[100:], y[100:])
    assert np.allclose(stepwise.predict(X), many.predict(X))  # exact incremental update
    with pytest.raises(ValueError, match="features"):
        many.partial_fit(X[:, :2], y)
    with pytest.raises(RuntimeError, match="not fitted"):
        BayesianLinearRegression().predict(X)


def test_evaluator_asks_about_what_it_has_not_heard() -> None:
    from swergio_al.demos.music.model import evaluator_learner, melody_matrix

    learner = evaluator_learner(random_state=0)
    genomes = random_genomes(30, random_state=5)
    X = melody_matrix(genomes)
    learner.teach(X[:10], [taste(decode(g)) for g in genomes[:10]])
    doubt = learner.uncertainty(X)
    assert doubt[10:].mean() > doubt[:10].mean()  # the rated ones are better known
    assert learner.version_ == 1
