"""The `linear_probe` learner: logistic regression on the frozen encoder features.

Hard labels fit `linear_probe` (scikit-learn, L-BFGS); soft-label targets fit
`soft_label_probe`, the same model under the distillation loss at
`spec.temperature`. Both are deterministic, so `seed` is unused: variation
across seeds comes from the distilled sets.
"""

from __future__ import annotations

from distill_core.evaluate.linear_probe import ProbeScore, linear_probe
from distill_core.evaluate.soft_probe import soft_label_probe
from distill_core.learners.data import LearnerData, TrainingRows
from distill_core.learners.spec import LearnerSpec


def train_linear_probe(spec: LearnerSpec, rows: TrainingRows, evaluation: LearnerData,
                       labels: list[int], seed: int) -> ProbeScore:
    """Fit the probe on `rows` (soft targets when `rows.soft` is set), score `evaluation`."""
    if rows.soft is not None:
        return soft_label_probe(rows.data.x, rows.soft, evaluation.x, evaluation.y, labels,
                                spec.C, spec.temperature, sample_weight=rows.weights)
    return linear_probe(rows.data.x, rows.data.y, evaluation.x, evaluation.y, labels, spec.C,
                        spec.max_iter, sample_weight=rows.weights)
