"""`random`: stratified random selection, the floor every method must beat."""

from __future__ import annotations

import numpy as np

from distill_core.synthesize.base import ClassData, ClassSelection, register


@register("random")
def random_selection(data: ClassData, budget: int, seed: int) -> ClassSelection:
    """`budget` distinct rows drawn uniformly without replacement.

    Attributes: none. Input: one class's feature matrix (only its length is used).
    Output: indices in draw order; scores are NaN (random has none).
    """
    rng = np.random.default_rng(seed)
    indices = rng.choice(len(data), size=budget, replace=False)
    return ClassSelection(indices=indices, scores=np.full(budget, np.nan))
