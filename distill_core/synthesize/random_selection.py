"""`random`: stratified random selection, the floor every method must beat."""

from __future__ import annotations

import numpy as np

from distill_core.synthesize.base import ClassData, ClassSelection, ranked_length, register


@register("random")
def random_selection(data: ClassData, budget: int, seed: int, ranked: int | None = None
                     ) -> ClassSelection:
    """`budget` distinct rows drawn uniformly without replacement, then (to `ranked` rows) a
    random permutation of the others drawn from the same generator.

    Attributes: none. Input: one class's feature matrix (only its length is used).
    Output: indices in draw order; scores are NaN (random has none).
    """
    rng = np.random.default_rng(seed)
    total = ranked_length(budget, ranked, len(data))
    indices = rng.choice(len(data), size=budget, replace=False)
    if total > budget:
        rest = np.setdiff1d(np.arange(len(data)), indices)
        indices = np.concatenate([indices, rng.permutation(rest)[:total - budget]])
    return ClassSelection(indices=indices, scores=np.full(total, np.nan))
