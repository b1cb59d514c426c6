"""`facility_location`: per class, greedily pick the rows that best cover the class.

Coverage is the facility-location function F(S) = Σ_j max_{i ∈ S} sim(i, j) over
the class's rows j, sim = (1 + cosine) / 2 on the (L2-normalised) features: every
row should have a picked row close to it (Krause & Golovin 2014; the coreset
objective of CRAIG, Mirzasoleiman et al. 2020, and of submodular data selection
for text, e.g. Kirchhoff & Bilmes 2014). The greedy rule picks the row with the
largest marginal gain; F is monotone submodular, so the greedy set is within
1 − 1/e of the best of its size. A class above `demand_rows` rows is covered on a
seeded random sample of that many rows, and above `candidate_rows` only a seeded
random sample of that many competes (memory: candidates × demand float32).

Attributes: demand_rows, candidate_rows. Input: one class's features. Output: rows
in pick order (to `ranked` rows: the greedy order continued); score = the pick's
marginal gain.
"""

from __future__ import annotations

import numpy as np

from distill_core.synthesize.base import ClassData, ClassSelection, ranked_length, register


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size, replace=False))


@register("facility_location")
def facility_location(data: ClassData, budget: int, seed: int, ranked: int | None = None,
                      demand_rows: int = 4000, candidate_rows: int = 8000) -> ClassSelection:
    x = data.features.astype(np.float32, copy=False)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12)
    rng = np.random.default_rng(seed)
    demand = _sample(len(x), demand_rows, rng)
    candidates = _sample(len(x), candidate_rows, rng)
    similarity = (1.0 + x[candidates] @ x[demand].T) / 2.0  # [candidates, demand], in [0, 1]
    covered = np.zeros(len(demand), dtype=np.float32)
    taken = np.zeros(len(candidates), dtype=bool)
    chosen, gains = [], []
    for _ in range(ranked_length(budget, ranked, len(candidates))):
        gain = np.maximum(similarity - covered, 0.0).sum(axis=1)
        gain[taken] = -np.inf
        best = int(np.argmax(gain))
        taken[best] = True
        covered = np.maximum(covered, similarity[best])
        chosen.append(int(candidates[best]))
        gains.append(float(gain[best]))
    return ClassSelection(np.asarray(chosen, dtype=np.int64), np.asarray(gains))
