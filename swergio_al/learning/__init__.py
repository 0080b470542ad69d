"""Active learning: which samples are worth a person's time, and learning from each answer.

Plain scikit-learn and numpy, no I/O. See :class:`ActiveLearner`.
"""

from swergio_al.learning.committee import Committee
from swergio_al.learning.learner import ActiveLearner, Refit
from swergio_al.learning.selection import diverse_batch, rank, representative, top_n
from swergio_al.learning.strategies import (
    available_strategies,
    clean_probabilities,
    entropy,
    get_strategy,
    kl_consensus,
    least_confidence,
    margin,
    member_probabilities,
    random_scores,
    register_strategy,
    std,
    vote_entropy,
)
from swergio_al.learning.stream import BudgetGate

__all__ = [
    "ActiveLearner",
    "BudgetGate",
    "Committee",
    "Refit",
    "available_strategies",
    "clean_probabilities",
    "diverse_batch",
    "entropy",
    "get_strategy",
    "kl_consensus",
    "least_confidence",
    "margin",
    "member_probabilities",
    "random_scores",
    "rank",
    "register_strategy",
    "representative",
    "std",
    "top_n",
    "vote_entropy",
]
