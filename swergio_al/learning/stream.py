"""Stream mode: ask about a sample as it streams past, at a controlled rate."""

from __future__ import annotations

import numpy as np


class BudgetGate:
    """Ask about roughly the top ``budget`` fraction of the scores that stream past.

    Keeps an online estimate ``t`` of the ``1 - budget`` quantile of the scores
    and asks when ``score > t``. After each decision ``t`` moves by
    ``step * (asked - budget)`` (stochastic approximation), where ``step`` is
    ``rate`` times a running spread of the scores. Summed over a stream this
    telescopes: ``asked fraction - budget = (t_end - t_start) / (step * n)``, so the
    rate stays on budget as long as ``t`` stays in the range of the scores —
    also when a retrained model shifts them.
    """

    def __init__(self, budget: float, *, rate: float = 0.05, warmup: int = 20) -> None:
        if not 0.0 < budget <= 1.0:
            raise ValueError(f"budget must be a fraction in (0, 1], got {budget!r}")
        self.budget = float(budget)
        self.rate = float(rate)
        self.warmup = int(warmup)
        self.threshold: float | None = None
        self.seen = 0
        self.asked = 0
        self._first: list[float] = []
        self._mean = 0.0
        self._spread = 0.0

    def should_ask(self, score: float) -> bool:
        s = float(score)
        if not np.isfinite(s):
            s = -np.inf if np.isnan(s) else s
        self.seen += 1
        if self.threshold is None:
            ask = self._warming_up(s)
        else:
            ask = s > self.threshold
            if np.isfinite(s):
                self._track_spread(s)
            step = self.rate * (self._spread if self._spread > 0 else 1.0)
            self.threshold += step * ((1.0 if ask else 0.0) - self.budget)
        self.asked += ask
        return ask

    def _warming_up(self, s: float) -> bool:
        finite = [v for v in self._first if np.isfinite(v)]
        # ask while this score is in the top `budget` of what has been seen
        ask = np.isfinite(s) and (
            not finite or float(np.mean(np.asarray(finite) >= s)) <= self.budget
        )
        self._first.append(s)
        if len(self._first) >= self.warmup:
            values = np.asarray([v for v in self._first if np.isfinite(v)])
            if values.size:
                self.threshold = float(np.quantile(values, 1.0 - self.budget))
                self._mean = float(values.mean())
                self._spread = float(np.abs(values - self._mean).mean())
            else:
                self._first.clear()
        return bool(ask)

    def _track_spread(self, s: float) -> None:
        alpha = 0.01
        self._mean += alpha * (s - self._mean)
        self._spread += alpha * (abs(s - self._mean) - self._spread)
