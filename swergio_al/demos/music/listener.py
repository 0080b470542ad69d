"""The simulated listener: explicit musical taste plus seeded noise, rating 0..5.

`taste(melody)` is the noise-free score (the benchmark's and tests' "true" score);
`SimulatedListener` adds a listener's inconsistency and rounds like a person would.
Any function from a Melody to a number in 0..5 can stand in (`load_listener`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from swergio_al.demos.music.features import FEATURE_NAMES, melody_features
from swergio_al.demos.music.melody import Melody

MIN_RATING = 0
MAX_RATING = 5

Listener = Callable[[Melody], float]

# Each rule maps the features to a liking in [0, 1]; the weights say how much it matters.
_F = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _near(value: float, best: float, tolerance: float) -> float:
    return max(0.0, 1.0 - abs(value - best) / tolerance)


RULES: dict[str, tuple[float, Callable[[np.ndarray], float]]] = {
    "mostly scale steps": (3.0, lambda f: f[_F["stepwise_ratio"]]),
    "few wide leaps": (2.0, lambda f: 1.0 - f[_F["leap_ratio"]]),
    "chord tones": (2.0, lambda f: f[_F["chord_tone_ratio"]]),
    "some breathing rests": (1.5, lambda f: _near(f[_F["rest_ratio"]], 0.15, 0.3)),
    "ends on the tonic": (1.5, lambda f: f[_F["ends_on_tonic"]]),
    "starts on the tonic": (0.5, lambda f: f[_F["starts_on_tonic"]]),
    "a motif comes back": (1.0, lambda f: _near(f[_F["bar_repetition"]], 0.35, 0.5)),
    "singable range": (1.0, lambda f: _near(f[_F["range"]], 0.6, 0.5)),
    "not too busy": (1.0, lambda f: _near(f[_F["note_density"]], 0.6, 0.5)),
}
_TOTAL_WEIGHT = sum(weight for weight, _ in RULES.values())


def taste(melody: Melody) -> float:
    """The noise-free rating in [0, 5]: a weighted mean of the rules."""
    features = melody_features(melody)
    liking = sum(weight * rule(features) for weight, rule in RULES.values()) / _TOTAL_WEIGHT
    return float(MAX_RATING * liking)


@dataclass
class SimulatedListener:
    """Rates like `taste` with Gaussian inconsistency, then rounds to whole stars."""

    noise: float = 0.5
    random_state: int | np.random.Generator | None = None
    rng_: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        self.rng_ = np.random.default_rng(self.random_state)

    def __call__(self, melody: Melody) -> float:
        rating = taste(melody) + self.rng_.normal(0.0, self.noise) if self.noise else taste(melody)
        return float(np.clip(np.rint(rating), MIN_RATING, MAX_RATING))


def load_listener(spec: str) -> Listener:
    """`module:function` → the function; "simulated" → a SimulatedListener."""
    if spec == "simulated":
        return SimulatedListener()
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"a listener is 'simulated' or 'module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import listener module {module_name!r}: {exc}") from None
    function = module
    for part in attribute.split("."):
        try:
            function = getattr(function, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not callable(function):
        raise ValueError(f"listener {spec!r} is not callable")
    return function


def checked_rating(listener: Listener, melody: Melody) -> float:
    """Call a listener and insist on a number in 0..5 (user functions can be wrong)."""
    rating = listener(melody)
    if isinstance(rating, bool) or not isinstance(rating, int | float | np.number):
        raise TypeError(f"a listener returns a number, got {type(rating).__name__}")
    if not MIN_RATING <= float(rating) <= MAX_RATING:
        raise ValueError(f"a rating lies in {MIN_RATING}..{MAX_RATING}, got {rating}")
    return float(rating)
