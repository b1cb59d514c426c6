"""The `linear_probe` learner: logistic regression on the frozen encoder features.

Hard labels fit `linear_probe` (scikit-learn, L-BFGS); soft-label targets fit
`soft_label_probe`, the same model under the distillation loss at
`spec.temperature`. Both are deterministic; `seed` only shuffles the folds when
`C: cv` picks C by the rule in `evaluate/probe_c.py` (the same for every method
and baseline), so variation across seeds comes from the distilled sets.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from distill_core.evaluate.linear_probe import ProbeScore, linear_probe
from distill_core.evaluate.probe_c import FitFn, choose_c
from distill_core.learners.data import LearnerData, TrainingRows
from distill_core.learners.spec import LearnerSpec


def _cv_fit(spec: LearnerSpec, rows: TrainingRows) -> FitFn:
    """Trains the probe `spec` describes on some of `rows` (for choosing C)."""
    x, y, soft, weights = rows.data.x, rows.data.y, rows.soft, rows.weights

    def fit(train: np.ndarray, c: float) -> Callable[[np.ndarray], np.ndarray]:
        w = None if weights is None else weights[train]
        if soft is not None:
            from distill_core.evaluate.soft_probe import fit_soft_probe  # torch: soft only

            weight, bias = fit_soft_probe(x[train], soft[train], c, spec.temperature,
                                          sample_weight=w)
            return lambda held: np.argmax(x[held] @ weight.T + bias, axis=1)
        from sklearn.linear_model import LogisticRegression

        if len(np.unique(y[train])) < 2:
            only = y[train][0]
            return lambda held: np.full(len(held), only)
        model = LogisticRegression(C=c, max_iter=spec.max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x[train], y[train], sample_weight=w)
        return lambda held: model.predict(x[held])

    return fit


def train_linear_probe(spec: LearnerSpec, rows: TrainingRows, evaluation: LearnerData,
                       labels: list[int], seed: int) -> ProbeScore:
    """Fit the probe on `rows` (soft targets when `rows.soft` is set), score `evaluation`.
    With `C: cv` the C is chosen first on `rows` alone (`probe_c`), and the note says which."""
    c, note = spec.C, ""
    if c == "cv":
        c, note = choose_c(rows.data.y, _cv_fit(spec, rows), seed)
    if rows.soft is not None:
        from distill_core.evaluate.soft_probe import soft_label_probe  # torch: soft only

        score = soft_label_probe(rows.data.x, rows.soft, evaluation.x, evaluation.y, labels,
                                 c, spec.temperature, sample_weight=rows.weights)
    else:
        score = linear_probe(rows.data.x, rows.data.y, evaluation.x, evaluation.y, labels, c,
                             spec.max_iter, sample_weight=rows.weights)
    if note:
        score.note = "; ".join(n for n in (note, score.note) if n)
    return score
