"""`herding`: per class, greedily pick the examples whose running mean tracks the class mean.

At step t it picks the unpicked row x minimising |mu - (s + x) / t|, where mu
is the class mean and s the sum of rows picked so far (Welling 2009; the
selection used by iCaRL, Rebuffi et al. 2017). Deterministic: the seed is unused.

Attributes: none. Input: one class's features. Output: rows in pick order (to
`ranked` rows: the greedy order continued); score = distance of the running
mean to the class mean after the pick.
References: Welling, Herding Dynamical Weights to Learn, ICML 2009.
"""

from __future__ import annotations

import numpy as np

from distill_core.synthesize.base import ClassData, ClassSelection, ranked_length, register


@register("herding")
def herding(data: ClassData, budget: int, seed: int, ranked: int | None = None
            ) -> ClassSelection:
    x = data.features.astype(np.float64, copy=False)
    mu = x.mean(axis=0)
    running = np.zeros_like(mu)
    taken = np.zeros(len(x), dtype=bool)
    squared_norms = np.einsum("ij,ij->i", x, x)  # the same at every step: computed once
    chosen, scores = [], []
    for step in range(1, ranked_length(budget, ranked, len(x)) + 1):
        # |mu - (running + x)/step|^2 for every candidate, up to a term that is the same for
        # every row: one matrix-vector product a step. The product first, then the doubling:
        # `2.0 * x @ target` doubled the whole matrix first (a copy of x at every step, 12x
        # the product's time), with the same result (doubling is exact; x is contiguous).
        target = step * mu - running
        distance = (squared_norms - 2.0 * (x @ target)) / step**2
        distance[taken] = np.inf
        row = int(np.argmin(distance))
        taken[row] = True
        running += x[row]
        chosen.append(row)
        scores.append(float(np.linalg.norm(mu - running / step)))
    return ClassSelection(np.asarray(chosen, dtype=np.int64), np.asarray(scores))
