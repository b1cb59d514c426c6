"""`kcenter_greedy`: farthest-first traversal, the greedy 2-approximation of k-center.

Starts from the row nearest the class mean, then repeatedly adds the row
farthest from every row picked so far, keeping one vector of distances to the
nearest pick (one matrix-vector product per step, no loop over pairs). It
covers the class's extremes, so on normalised sentence embeddings it tends to
pick outliers: the literature's "K-Center" baseline is `kmeans`, not this.

Attributes: none. Input: one class's features. Output: rows in pick order (to
`ranked` rows: the traversal continued);
score = the picked row's distance to the nearest earlier pick (the covering
radius at that step; 0 for the first).
References: Gonzalez 1985; Sener & Savarese, Active Learning for CNNs: a Core-Set
Approach, ICLR 2018.
"""

from __future__ import annotations

import numpy as np

from distill_core.synthesize.base import ClassData, ClassSelection, ranked_length, register


@register("kcenter_greedy")
def kcenter_greedy(data: ClassData, budget: int, seed: int, ranked: int | None = None
                   ) -> ClassSelection:
    x = data.features.astype(np.float32, copy=False)
    squared = np.einsum("ij,ij->i", x, x)

    def distances_to(row: int) -> np.ndarray:
        d = squared - 2.0 * (x @ x[row]) + squared[row]
        return np.sqrt(np.maximum(d, 0.0))

    mean = x.mean(axis=0)
    first = int(np.argmin(squared - 2.0 * (x @ mean)))
    chosen, scores = [first], [0.0]
    nearest = distances_to(first)
    nearest[first] = -np.inf  # a picked row is never picked again (duplicates sit at 0)
    for _ in range(ranked_length(budget, ranked, len(x)) - 1):
        row = int(np.argmax(nearest))
        chosen.append(row)
        scores.append(float(nearest[row]))
        nearest = np.minimum(nearest, distances_to(row))
        nearest[chosen] = -np.inf
    return ClassSelection(np.asarray(chosen, dtype=np.int64), np.asarray(scores))
