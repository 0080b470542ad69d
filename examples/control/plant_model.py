"""What the model component knows: a linear plant model learned by recursive least squares.

T[k+1] ≈ w · [T[k], u[k], u[k-1], u[k-2], u[k-3], 1]: enough lags for a delay
of up to three steps, which the model is not told. `rollout` predicts the
temperature `horizon` steps ahead with the input held at `power`, and its
derivative with respect to that power (forward-mode, exact for the model).
"""

from __future__ import annotations

import numpy as np

LAGS = 4  # inputs u[k] .. u[k-3]


class LinearPlantModel:
    def __init__(self, *, prior: float = 1000.0) -> None:
        self.prior = prior
        size = 1 + LAGS + 1
        self.weights_ = np.zeros(size)
        self.covariance_ = np.eye(size) * prior
        self.samples_ = 0

    @staticmethod
    def features(temperature: float, inputs: list[float]) -> np.ndarray:
        """`inputs` newest first: u[k], u[k-1], ... (missing ones, before the start, are 0)."""
        padded = [*inputs[:LAGS], *[0.0] * (LAGS - len(inputs))]
        return np.array([temperature, *padded, 1.0])

    def learn(self, temperature: float, inputs: list[float], next_temperature: float) -> float:
        """One recursive least-squares update; returns the prediction error before it."""
        x = self.features(temperature, inputs)
        error = next_temperature - float(self.weights_ @ x)
        px = self.covariance_ @ x
        gain = px / (1.0 + x @ px)
        self.weights_ = self.weights_ + gain * error
        self.covariance_ = self.covariance_ - np.outer(gain, px)
        self.samples_ += 1
        return error

    def rollout(self, temperature: float, past_inputs: list[float], power: float,
                horizon: int) -> tuple[float, float]:
        """(T[k+horizon], dT[k+horizon]/d power) from T[k], with u[k..] = power;
        `past_inputs` newest first: u[k-1], u[k-2], ..."""
        w = self.weights_
        inputs = list(past_inputs[:LAGS - 1])
        inputs += [0.0] * (LAGS - 1 - len(inputs))
        d_inputs = [0.0] * (LAGS - 1)  # past inputs do not depend on the power
        d_temperature = 0.0
        for _ in range(horizon):
            inputs = [power, *inputs[:LAGS - 1]]
            d_inputs = [1.0, *d_inputs[:LAGS - 1]]
            temperature = float(w @ self.features(temperature, inputs))
            d_temperature = w[0] * d_temperature + float(w[1:1 + LAGS] @ np.array(d_inputs))
        return temperature, d_temperature
