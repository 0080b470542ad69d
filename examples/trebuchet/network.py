"""The controller's model: a small numpy network from a target distance to the trebuchet's inputs.

Trained by gradients that arrive from elsewhere: `forward` keeps what
`backward` needs, `backward` takes d(loss)/d(outputs) (the chain's upstream
part, computed by whoever owns the rest of the process) and takes one Adam step.
"""

from __future__ import annotations

import numpy as np


class Controller:
    """target (n,) -> inputs (n, 2) within `low`..`high`; tanh hidden layer, sigmoid outputs."""

    def __init__(self, *, hidden: int = 16, learning_rate: float = 0.01,
                 target_range: tuple[float, float], low: np.ndarray, high: np.ndarray,
                 random_state: int = 0) -> None:
        rng = np.random.default_rng(random_state)
        self.center = (target_range[0] + target_range[1]) / 2
        self.scale = (target_range[1] - target_range[0]) / 2
        self.low = np.asarray(low, dtype=float)
        self.high = np.asarray(high, dtype=float)
        self.learning_rate = learning_rate
        self.params_ = {
            "w1": rng.normal(0, 1.0, (1, hidden)), "b1": rng.normal(0, 0.5, hidden),
            "w2": rng.normal(0, 1.0 / np.sqrt(hidden), (hidden, 2)), "b2": np.zeros(2),
        }
        self._moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in self.params_.items()}
        self.steps_ = 0
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def forward(self, targets: np.ndarray) -> np.ndarray:
        p = self.params_
        x = ((np.asarray(targets, dtype=float) - self.center) / self.scale)[:, None]
        hidden = np.tanh(x @ p["w1"] + p["b1"])
        squashed = 1 / (1 + np.exp(-(hidden @ p["w2"] + p["b2"])))
        self._cache = (x, hidden, squashed)
        return self.low + (self.high - self.low) * squashed

    def backward(self, d_inputs: np.ndarray) -> None:
        """One Adam step from d(loss)/d(inputs) (n, 2) for the last forward()."""
        assert self._cache is not None, "backward() needs a forward() first"
        x, hidden, squashed = self._cache
        p = self.params_
        d_logits = d_inputs * (self.high - self.low) * squashed * (1 - squashed)
        d_hidden = (d_logits @ p["w2"].T) * (1 - hidden ** 2)
        grads = {"w2": hidden.T @ d_logits, "b2": d_logits.sum(0),
                 "w1": x.T @ d_hidden, "b1": d_hidden.sum(0)}
        self.steps_ += 1
        beta1, beta2 = 0.9, 0.999
        for key, grad in grads.items():
            m, v = self._moments[key]
            m[:] = beta1 * m + (1 - beta1) * grad
            v[:] = beta2 * v + (1 - beta2) * grad ** 2
            m_hat = m / (1 - beta1 ** self.steps_)
            v_hat = v / (1 - beta2 ** self.steps_)
            p[key] -= self.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)
