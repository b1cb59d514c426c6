"""`span_pursuit`: the rows whose span holds the pool's linear probe, for learned soft labels.

With learned soft labels (`learned_labels.py`) a set's soft-label probe can become any probe
whose weights lie in the span of the set's row differences, and the labels make the best
one there. Which probe that is depends only on the rows' span. So this method chooses the
rows for that: the logistic regression fitted on the pool (C = 1, a seeded sample of
`target_rows` rows: the probe the whole pool would train) is the target W [classes, dim],
and rows are added greedily, jointly over the classes, each the one whose direction (from
the first pick) brings the most of W into the span: orthogonal matching pursuit of W's rows
on the pool's rows (Pati et al. 1993; GradMatch, Killamsetty et al. 2021, matches gradients
the same way; the representer view of a probe's weights as a combination of training rows:
Yeh et al., "Representer Point Selection", 2018). A pick's gain is ‖R x̃‖² / ‖x̃‖², with R
the part of W outside the span and x̃ the row's direction orthogonalised against it.

Every class gets exactly `budget` picks (the pursuit takes the best row among the classes
still short), then continues to `budget x oversample` rows per class: the filter stage's
reserve. A class with no more rows than the budget keeps all of them (they enter the span
first). The picks are chosen for their span, not to look like their class: on their hard
labels they make a weak probe, so the method is meant with `synthesize.labels.learn` (its
score is the `+soft` row; benchmarks/RESULTS.md). Scores: the share of ‖W‖² the pick
brought into the span (NaN for a class kept whole). Deterministic for a seed: the seed
draws the target's sample when the pool is larger than `target_rows`. Memory: the features
plus [rows, classes] floats; one matrix-vector product over the pool per pick.
"""

from __future__ import annotations

import numpy as np

from distill_core.synthesize.base import ClassData, Selection, register_joint, select_per_class
from distill_core.synthesize.learned_labels import pool_probe
from distill_core.synthesize.learned_weights import demand_sample

PURSUIT_SEED_TAG = 1_406  # the target's pool sample, apart from the labels' own (1_405)
SPAN_TOLERANCE = 1e-6  # a row this close to the span (relative to the largest) adds nothing


def _products(x: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """x @ vectors in float64, computed in x's float32: numpy would otherwise copy the whole
    pool to float64 at every product."""
    return (x @ vectors.astype(np.float32)).astype(np.float64)


class _Pursuit:
    """The greedy state: the span's orthonormal basis and, per pool row, the residual target's
    products with the row's direction and the direction's squared norm outside the span."""

    def __init__(self, x: np.ndarray, target: np.ndarray, origin: np.ndarray) -> None:
        self.x, self.target = x, target  # x stays float32: the products over the pool use it
        self.origin = np.asarray(origin, dtype=np.float64)
        self.basis: list[np.ndarray] = []
        # direction d_i = x_i − origin; products R d_i (R = W at the start), |d_i|²
        self.residual = _products(x, target.T) - self.origin @ target.T
        self.outside = (np.einsum("ij,ij->i", x, x, dtype=np.float64)
                        - 2 * _products(x, self.origin) + self.origin @ self.origin)
        self.floor = SPAN_TOLERANCE * max(float(self.outside.max()), 1e-12)

    def gains(self) -> np.ndarray:
        """Each row's gain: ‖R d̃‖² / ‖d̃‖²; −1 where the row is (nearly) in the span."""
        gain = (self.residual**2).sum(axis=1) / np.maximum(self.outside, self.floor)
        gain[self.outside <= self.floor] = -1.0
        return gain

    def add(self, row: int) -> float:
        """Puts the row's direction in the span; returns ‖W u‖², the part of ‖W‖² it
        brought in (u: its new unit axis; 0 when it adds none)."""
        direction = self.x[row].astype(np.float64) - self.origin
        for vector in self.basis:  # Gram–Schmidt, twice for stability
            direction -= (vector @ direction) * vector
        for vector in self.basis:
            direction -= (vector @ direction) * vector
        norm = float(np.linalg.norm(direction))
        if norm <= np.sqrt(self.floor):
            return 0.0  # already in the span: it adds no direction
        unit = direction / norm
        self.basis.append(unit)
        captured = self.target @ unit
        along = _products(self.x, unit) - self.origin @ unit  # each row's d_i along the axis
        self.residual -= np.outer(along, captured)
        self.outside -= along**2
        return float(captured @ captured)


@register_joint("span_pursuit")
def span_pursuit(data: ClassData, label_ids: np.ndarray, budget: int, seed: int,
                 oversample: int = 1, target_rows: int = 20_000) -> Selection:
    x = np.ascontiguousarray(data.features, dtype=np.float32)
    y = np.asarray(label_ids)
    labels = np.unique(y)
    if len(labels) < 2:  # no probe to pursue: the class's herding picks
        return select_per_class("herding", ClassData(x), y, budget, seed, oversample=oversample)
    sample = demand_sample(len(y), seed, target_rows, PURSUIT_SEED_TAG)
    weight, _ = pool_probe(x[sample].astype(np.float64), y[sample], int(y.max()) + 1)
    weight = weight[labels]  # the classes the pool holds
    total = float((weight**2).sum()) or 1.0
    sizes = {int(c): int((y == c).sum()) for c in labels}
    kept_whole = [int(c) for c in labels if sizes[int(c)] <= budget]
    forced = np.flatnonzero(np.isin(y, kept_whole))
    if len(forced):
        anchor = int(forced[0])
    else:  # the row whose direction from the pool mean carries most of W
        anchor = int(np.argmax(_Pursuit(x, weight, x.mean(axis=0, dtype=np.float64)).gains()))
    pursuit = _Pursuit(x, weight, x[anchor])
    order: dict[int, list[int]] = {int(c): [] for c in labels}
    score: dict[int, float] = {}
    taken = np.zeros(len(y), dtype=bool)

    def take(row: int) -> None:
        share = pursuit.add(row) / total
        taken[row] = True
        order[int(y[row])].append(row)
        score[row] = np.nan if sizes[int(y[row])] <= budget else share

    for row in [anchor, *[int(r) for r in forced if r != anchor]]:
        take(row)
    for quota in (budget, budget * oversample):
        wanted = {c: min(sizes[c], quota) for c in order}
        while any(len(order[c]) < wanted[c] for c in order):
            gains = pursuit.gains()
            short = [c for c in order if len(order[c]) < wanted[c]]
            gains[taken | ~np.isin(y, short)] = -np.inf
            take(int(np.argmax(gains)))
    return _selection(order, score, sizes, budget)


def _selection(order: dict[int, list[int]], score: dict[int, float], sizes: dict[int, int],
               budget: int) -> Selection:
    """Each class's rows in pick order, the budget first (`select_classes`' layout)."""
    indices, ranks, scores = [], [], []
    for label in sorted(order):
        rows = order[label]
        indices.append(np.asarray(rows, dtype=np.int64))
        ranks.append(np.arange(len(rows)))
        scores.append(np.array([score[r] for r in rows], dtype=np.float64))
    shortfall = {c: {"available": n, "budget": budget} for c, n in sizes.items() if n < budget}
    chosen = np.concatenate(indices)
    return Selection(chosen, np.concatenate(ranks), np.concatenate(scores),
                     np.ones(len(chosen)), shortfall)
