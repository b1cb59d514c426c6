"""What a learner reads: texts (and pair texts), frozen features and label ids.

`LearnerData` is one side of a fit (the training rows or the evaluation split);
`TrainingRows` adds what only the training side carries: per-row weights and,
when the distilled set has them, the teacher's soft labels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np


@dataclass
class LearnerData:
    """Texts (and pair texts), frozen features [n, d] and label ids [n] of some rows."""

    texts: list[str]
    pairs: list[str] | None
    x: np.ndarray
    y: np.ndarray


@dataclass
class TrainingRows:
    """The rows a learner trains on.

    Attributes:
        data: texts, features and (hard) label ids.
        weights: per-row training weights, or None for uniform.
        soft: soft-label targets [n, C] (the teacher's distribution); None trains on `data.y`.
        synthetic: a learned run's synthetic tensors behind these rows and their protocol
            (`learners.embeds.LearnedRows`), for `embeds_finetune`; None elsewhere.
    """

    data: LearnerData
    weights: np.ndarray | None = None
    soft: np.ndarray | None = None
    synthetic: Any = None

    def hard(self) -> TrainingRows:
        """The same rows trained on their hard labels."""
        return replace(self, soft=None)
