"""The linear-probe learner: logistic regression on frozen encoder embeddings.

Cheap enough to score every seed and the full training split on a laptop, and
the learner behind DESIGN.md's reference figures. L-BFGS on a convex loss is
deterministic, so variation across seeds comes from the distilled sets.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass
class ProbeScore:
    accuracy: float
    macro_f1: float
    n_train: int
    wall_time_s: float
    converged: bool
    note: str = ""


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray,
                 eval_y: np.ndarray, labels: list[int], C: float = 1.0,  # noqa: N803
                 max_iter: int = 2000, sample_weight: np.ndarray | None = None) -> ProbeScore:
    """Fit on (train_x, train_y), report accuracy and macro-F1 over `labels` on the eval split."""
    from sklearn.exceptions import ConvergenceWarning  # when used: not on a cached rerun
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    start = time.perf_counter()
    classes = np.unique(train_y)
    note, converged = "", True
    if len(classes) < 2:
        # A one-class training set can only predict that class; say so instead of failing.
        predicted = np.full(len(eval_y), classes[0] if len(classes) else -1)
        note = "single class in training set: constant prediction"
    else:
        model = LogisticRegression(C=C, max_iter=max_iter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(train_x, train_y, sample_weight=sample_weight)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        predicted = model.predict(eval_x)
    return ProbeScore(
        accuracy=float(accuracy_score(eval_y, predicted)),
        macro_f1=float(f1_score(eval_y, predicted, labels=labels, average="macro",
                                zero_division=0)),
        n_train=int(len(train_y)), wall_time_s=round(time.perf_counter() - start, 3),
        converged=converged, note=note,
    )
