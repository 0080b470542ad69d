"""Adaptive overlap: extra answers only where they matter.

A request with ``"adaptive": true`` and overlap k is first given to one person.
After each answer the service asks `needs_another` whether to open one more
slot, up to k:

* after the first answer: yes when that labeler's estimated accuracy is below
  `trusted` or their answer differs from the model's prediction;
* after the second: yes when the two disagree;
* and from then on: yes while the answers' combined posterior (each labeler's
  estimated accuracy, errors spread evenly over the other choices; the model's
  prediction as one more voter, at the rate it matched the room's aggregates)
  stays below `sure`.

Labelers' accuracies come from the room's `Consensus` (Dawid–Skene, seeded by
gold questions); one with no estimate yet counts as `unknown`. An `AdaptiveRoom`
keeps that consensus and takes the decision after each label; re-estimating is
Dawid–Skene over the whole room, so the service calls it off the event loop.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from swergio_al.feedback.consensus import Consensus
from swergio_al.feedback.records import FeedbackRequest, Label

ADAPTIVE_KEY = "adaptive"
MODEL = "\x00model"  # the model as a voter (no labeler name can hold U+0000)
MIN_JUDGED = 20  # predictions compared before the model counts as a voter


@dataclass(frozen=True)
class OverlapPolicy:
    trusted: float = 0.8
    sure: float = 0.9
    unknown: float = 0.7

    def needs_another(self, answers: Sequence[tuple[str, Any]], *, limit: int,
                      prediction: Any, choices: Sequence[Any] | None,
                      accuracy: Mapping[str, float],
                      model_accuracy: float | None = None) -> bool:
        """`answers`: (labeler, answer) so far, oldest first; `limit`: the request's k;
        `model_accuracy`: how often the model's predictions matched the room's
        aggregates (when known, the prediction counts as one more voter)."""
        n = len(answers)
        if n == 0:
            return True
        if n >= limit:
            return False
        if n == 1:
            labeler, answer = answers[0]
            return accuracy.get(labeler, self.unknown) < self.trusted or \
                prediction is None or answer != prediction
        if n == 2 and answers[0][1] != answers[1][1]:
            return True
        # Two who agree may still both be weak (0.7 and 0.55 agreeing is right 85 % of the
        # time with three choices): one more then, while k allows; the model's prediction
        # tips the balance either way.
        if prediction is not None and model_accuracy is not None:
            answers = [*answers, (MODEL, prediction)]
            accuracy = {**accuracy, MODEL: model_accuracy}
        return self.posterior(answers, choices, accuracy) < self.sure

    def posterior(self, answers: Sequence[tuple[str, Any]], choices: Sequence[Any] | None,
                  accuracy: Mapping[str, float]) -> float:
        """Posterior probability of the leading answer under a uniform prior."""
        options = list(choices) if choices else list({repr(a): a for _, a in answers}.values())
        k = max(len(options), 2)
        log_p = np.zeros(len(options))
        for labeler, answer in answers:
            right = float(np.clip(accuracy.get(labeler, self.unknown), 0.01, 0.99))
            wrong = (1 - right) / (k - 1)
            log_p += np.log([right if answer == c else wrong for c in options])
        p = np.exp(log_p - log_p.max())
        return float(p.max() / p.sum())


class AdaptiveRoom:
    """One room's adaptive overlap: its answers' consensus, the model's prediction of each
    sample and how often such predictions matched the aggregate.

    Not thread-safe, and slow now and then (each time the room's answers grew by a
    tenth its labelers are re-estimated: Dawid–Skene over every answer): call it from
    one worker thread at a time, labels in the order they were committed.
    """

    def __init__(self, consensus: Consensus, policy: OverlapPolicy) -> None:
        self.consensus = consensus
        self.policy = policy
        self._predictions: dict[Hashable, Any] = {}
        self._model_accuracy: tuple[int, float | None] = (-1, None)  # (answers, rate)

    def after_label(self, label: Label, request: FeedbackRequest, limit: int) -> int | None:
        """The new overlap of the label's request, when it needs one more answer."""
        consensus = self.consensus
        # A label read from the store with the rest of the room is not added twice.
        consensus.add(label.label_id, label.sample_id, label.labeler, label.answer,
                      label.seconds)
        answers = consensus.answers_of(label.sample_id)
        choices = request.answer.get("choices") if isinstance(request.answer, dict) else None
        if request.prediction is not None:
            self._predictions[label.sample_id] = request.prediction
        accuracy = consensus.recent_accuracy()
        more = self.policy.needs_another(answers, limit=limit, prediction=request.prediction,
                                         choices=choices, accuracy=accuracy,
                                         model_accuracy=self._model_rate())
        return consensus.labels_of(label.sample_id) + 1 if more else None

    def measured(self, gold_accuracy: Mapping[str, float]) -> None:
        """Labelers' accuracies on the room's gold questions, as they are now."""
        self.consensus.gold_accuracy.update(gold_accuracy)

    def _model_rate(self) -> float | None:
        """How often the model's predictions matched the aggregate of samples with two or
        more answers; refreshed as often as the labelers' estimates."""
        consensus = self.consensus
        seen, rate = self._model_accuracy
        if seen >= 0 and len(consensus.answers) - seen < max(10, len(consensus.answers) // 10):
            return rate
        result = consensus.aggregate()
        judged = [value == self._predictions[sample]
                  for sample, value in zip(result.samples, result.values, strict=True)
                  if sample in self._predictions and len(consensus.answers_of(sample)) >= 2]
        rate = sum(judged) / len(judged) if len(judged) >= MIN_JUDGED else None
        self._model_accuracy = (len(consensus.answers), rate)
        return rate
