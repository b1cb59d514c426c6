"""`el2n`: difficulty-stratified selection on the teacher's EL2N scores.

Drops the hardest `prune_hardest` fraction of the class (likely mislabelled or
ambiguous), splits the rest into `budget` strata of equal size by EL2N score,
and draws one row at random from each stratum, so the set covers easy to hard
examples (coverage-centric selection, Zheng et al. 2023). Reported even where
it loses to random, as the literature finds at tiny budgets.

Attributes: `prune_hardest` (fraction, default 0.1). Input: one class's EL2N
scores (teacher signals). Output: one row per stratum, easiest stratum first;
score = the row's EL2N. Ranked beyond the budget (the filter stage's reserve),
the draws continue round by round: another random row of each stratum, easiest
first, until `ranked` rows (the pruned hardest rows are never ranked).
References: Paul et al., Deep Learning on a Data Diet, NeurIPS 2021; Zheng et al.,
Coverage-centric Coreset Selection for High Pruning Rates, ICLR 2023.
"""

from __future__ import annotations

import numpy as np

from distill_core.synthesize.base import ClassData, ClassSelection, ranked_length, register


@register("el2n", needs_teacher=True)
def el2n_stratified(data: ClassData, budget: int, seed: int, prune_hardest: float = 0.1,
                    ranked: int | None = None) -> ClassSelection:
    if not 0.0 <= prune_hardest < 1.0:
        raise ValueError("prune_hardest must be in [0, 1)")
    assert data.el2n is not None
    order = np.argsort(data.el2n, kind="stable")  # easiest first
    keep = max(budget, int(np.floor(len(order) * (1.0 - prune_hardest))))
    order = order[:keep]
    rng = np.random.default_rng(seed)
    strata = np.array_split(order, budget)
    chosen = [int(rng.choice(stratum)) for stratum in strata]
    total = ranked_length(budget, ranked, len(order))
    left = [[int(i) for i in stratum if i != pick] for stratum, pick in zip(strata, chosen,
                                                                             strict=True)]
    while len(chosen) < total:
        for rest in left:
            if rest and len(chosen) < total:
                chosen.append(rest.pop(int(rng.integers(len(rest)))))
    picked = np.asarray(chosen, dtype=np.int64)
    return ClassSelection(picked, data.el2n[picked].astype(np.float64))
