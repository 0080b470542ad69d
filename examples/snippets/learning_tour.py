"""swergio_al.learning without a server: docs/learning.md shows its sections."""

import asyncio

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.preprocessing import StandardScaler

from swergio_al.learning import ActiveLearner, register_strategy

digits = load_digits(n_class=3)                       # three classes: 0, 1, 2
X_all = StandardScaler().fit_transform(digits.data)
X_seed, y_seed = X_all[[0, 1, 2]], digits.target[[0, 1, 2]]
X_pool, y_pool = X_all[3:], digits.target[3:]
X = X_pool[:5]

# --8<-- [start:basics]
learner = ActiveLearner(SGDClassifier(loss="log_loss"), strategy="margin",
                        classes=[0, 1, 2], random_state=0)
learner.fit(X_seed, y_seed)                           # optional seed labels
indices, scores = learner.query(X_pool, n=10, diversity=0.3)
answer = y_pool[indices[0]]                           # what a person said about the first
learner.teach(X_pool[indices[:1]], [answer])          # learns at once, version_ += 1
learner.predict(X), learner.predict_proba(X)          # drops into sklearn code
learner.uncertainty(X)                                # scores, higher = ask sooner
# --8<-- [end:basics]
assert learner.version_ == 2 and learner.n_labels_ == 4 and len(set(indices)) == 10

two = digits.target < 2                               # a yes/no problem for the next part
X_binary, y_binary = X_all[two], digits.target[two]
pretrained = SGDClassifier(random_state=0).fit(X_binary, y_binary)
calibrated_model = CalibratedClassifierCV(LogisticRegression(), cv=3).fit(X_binary, y_binary)


def rules(X):                                         # a hand-written rule of thumb
    return (X[:, 10] > 0).astype(int)


# --8<-- [start:own-uncertainty]
# 1. any object with uncertainty(X) is used as is
class DistanceToBoundary:
    def __init__(self, model):
        self.model = model

    def uncertainty(self, X):
        return -np.abs(self.model.decision_function(X))   # near the boundary = unsure


learner = ActiveLearner(SGDClassifier(loss="log_loss"), classes=[0, 1],
                        uncertainty_model=DistanceToBoundary(pretrained))

# 2. any object with predict_proba(X) is scored by the chosen strategy
learner = ActiveLearner(SGDClassifier(loss="log_loss"), "entropy", classes=[0, 1],
                        uncertainty_model=calibrated_model)


# 3. a function registered under a new name
def disagreement_with_rules(model, X):
    return (model.predict(X) != rules(X)).astype(float)


register_strategy("rules", disagreement_with_rules, replace=True)
learner = ActiveLearner(SGDClassifier(loss="log_loss"), "rules", classes=[0, 1])
# --8<-- [end:own-uncertainty]
learner.fit(X_binary[:20], y_binary[:20])
assert set(np.unique(learner.uncertainty(X_binary))) <= {0.0, 1.0}


async def keep_learning(learner, X, y):
    for i in range(len(y)):
        learner.teach(X[i:i + 1], [y[i]])
        # --8<-- [start:refit]
        if learner.refit_due:                       # 20 labels (and 10% more) since the last
            refit = await asyncio.to_thread(learner.fit_full)    # fits a new model off the loop
            learner.swap_in(refit)   # atomic; replays labels taught meanwhile; False if stale
        # --8<-- [end:refit]


learner = ActiveLearner(SGDClassifier(loss="log_loss"), classes=[0, 1, 2], random_state=0)
asyncio.run(keep_learning(learner, X_pool[:45], y_pool[:45]))
assert learner.n_labels_ == 45 and not learner.refit_due
print("learning tour: ok")
