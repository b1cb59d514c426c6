"""`bilevel`: rows chosen jointly over the classes so that a learner trained on them fits the pool.

A coreset by bilevel optimisation (Borsos, Mutný & Krause, NeurIPS 2020), with the inner
learner in closed form: one gradient step of softmax cross-entropy from a zero linear head,
whose weights are then Σ_s (onehot(y_s) − 1/C) ⊗ x_s · lr / m over the set's m rows, so the
set's rows *are* the classifier (the protocol of learned meta-matching's zero head and of
`decode: matched_sentence`). It is also, to first order, what the evaluation's strongly
regularised linear probe (C = 1 on unit-norm features) learns from a tiny set. The outer
loss is that classifier's mean cross-entropy on a seeded sample of `demand_rows` pool rows
of every class; lr (a temperature: it changes which rows fit best, not the classifier's
direction) is the power of two in [1/2, 1024] that minimises it, chosen again after each pass.

Start: herding's picks in each class. Then coordinate descent: for each pick in turn, the
`shortlist` rows of its class whose swap lowers the loss most to first order are tried
exactly, and the best replaces the pick when it lowers the loss; at most `passes` sweeps,
fewer when a sweep swaps nothing. Candidates: a seeded sample of `candidate_rows` rows per
class (memory: demand_rows x candidate_rows x 4 bytes per class, every class's kept when
they fit in 1 GiB, else one class's at a time). A class with
no more rows than the budget keeps all of them (and still counts in the classifier).
Deterministic for a seed.

With `standardize` (the default), herding and the proxy both work on the features z-scored
per dimension (`standardized`): on sentence pairs the raw dot products are dominated by how
alike the two sentences are, not how they relate; measured better in most cells of the
grid, by far on pairs (benchmarks/RESULTS.md).

Last (`probe_passes`, default 2): the picks' swaps are tried again with the evaluation's
linear probe itself refitted on the set, on the raw features (`probe_refine.py`): the proxy
is a first-order reading of that probe, and on sentence pairs and SST-5 the exact probe in
the loop gained 1.4-6.8 points on training holdouts (benchmarks/RESULTS.md).

Attributes: demand_rows, candidate_rows, passes, shortlist, standardize, probe_passes,
probe_shortlist, probe_c. Input: every
class's features. Output: per class the refined picks (the budget), then herding's next
picks that the refined set did not take (the filter stage's reserve); score = how much the
outer loss rises when the pick is left out of the final set (NaN for reserve rows).
References: Borsos, Mutný & Krause, Coresets via Bilevel Optimization for Continual
Learning and Streaming, NeurIPS 2020; Welling, Herding Dynamical Weights to Learn, ICML 2009.
"""

from __future__ import annotations

import numpy as np

from distill_core.seeds import derive_seed
from distill_core.synthesize.base import (
    ClassData,
    Selection,
    register_joint,
    select_per_class,
)
from distill_core.synthesize.probe_refine import refine_with_probe

LR_GRID = tuple(float(2.0**k) for k in range(-1, 11))
DEMAND_SEED_TAG = 1_402  # keeps the demand sample apart from the classes' own seeds
KEEP_KERNELS_BYTES = 1 << 30  # demand x candidates kernels of every class kept up to this


def standardized(x: np.ndarray) -> np.ndarray:
    """Each dimension z-scored over the pool, rows scaled by 1/sqrt(dim) (unit norm on
    average): every dimension counts alike in the dot products, e.g. the |u − v| and u·v
    parts of a sentence pair's features next to u and v themselves."""
    centred = x - x.mean(0)
    return (centred / (x.std(0) + 1e-6) / np.sqrt(x.shape[1])).astype(np.float32)


def _cross_entropy(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean cross-entropy over the rows (axis -2) of [..., N, C] logits."""
    shifted = logits - logits.max(-1, keepdims=True)
    picked = np.take_along_axis(shifted, np.broadcast_to(targets[:, None],
                                                         shifted.shape[:-1] + (1,)), -1)
    return (np.log(np.exp(shifted).sum(-1)) - picked[..., 0]).mean(-1)


def _trial_losses(without: np.ndarray, columns: np.ndarray, coefficient: np.ndarray,
                  lr: float, targets: np.ndarray) -> np.ndarray:
    """Mean cross-entropy of each trial r, whose logits are lr * (without + columns[r] ⊗
    coefficient) ([N, C]; columns [R, N]). Laid out class by class, so every step works on
    contiguous [R, N] arrays: reductions over a last axis of a few classes were most of
    bilevel's time (benchmarks/bench_bilevel.py: 1.75-3.2x faster with this)."""
    parts = [lr * (without[:, c] + coefficient[c] * columns) for c in range(without.shape[1])]
    top = parts[0].copy()
    for part in parts[1:]:
        np.maximum(top, part, out=top)
    total = np.zeros_like(top)
    for part in parts:
        total += np.exp(part - top)
    rows = np.arange(len(targets))
    picked = lr * (without[rows, targets] + columns * coefficient[targets])
    return (np.log(total) + top - picked).mean(1)


def _best_lr(scores: np.ndarray, targets: np.ndarray) -> float:
    return min(LR_GRID, key=lambda lr: float(_cross_entropy(lr * scores, targets)))


class _Problem:
    """The outer loss of a set, kept as the demand rows' unscaled logits (`scores`)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, classes: int, picks: list[int],
                 demand: np.ndarray) -> None:
        self.x, self.y, self.demand_y = x, y, y[demand]
        self.demand_x = x[demand]
        self.coefficient = (np.eye(classes, dtype=np.float32) - 1.0 / classes) / len(picks)
        self.picks = list(picks)
        self.scores = sum((np.outer(self.demand_x @ x[p], self.coefficient[y[p]])
                           for p in self.picks), np.zeros((len(demand), classes), np.float32))
        self.lr = _best_lr(self.scores, self.demand_y)

    def share(self, row: int) -> np.ndarray:
        return np.outer(self.demand_x @ self.x[row], self.coefficient[self.y[row]])

    def loss(self, scores: np.ndarray | None = None) -> float:
        return float(_cross_entropy(self.lr * (self.scores if scores is None else scores),
                                    self.demand_y))


def _refine_pick(problem: _Problem, slot: int, candidates: np.ndarray, kernel: np.ndarray,
                 shortlist: int) -> bool:
    """Try the shortlist for pick `slot`; swap in the best row if it lowers the loss."""
    current = problem.picks[slot]
    label = int(problem.y[current])
    coefficient = problem.coefficient[label]
    without = problem.scores - problem.share(current)
    logits = problem.lr * without
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(p.shape[1], dtype=np.float32)[problem.demand_y]
    first_order = kernel.T @ ((p - onehot) @ coefficient)  # [candidates]: d loss per row
    taken = np.asarray([pick for pick in problem.picks if pick != current],
                       dtype=candidates.dtype)
    ranked = np.argsort(first_order, kind="stable")
    order = ranked[~np.isin(candidates[ranked], taken)][:shortlist]
    if not len(order):
        return False
    columns = kernel[:, order].T  # [R, N]: each trial row's products with the demand rows
    losses = _trial_losses(without, columns, coefficient, problem.lr, problem.demand_y)
    best = int(np.argmin(losses))
    row = int(candidates[order[best]])
    if row == current or float(losses[best]) >= problem.loss() - 1e-7:
        return False
    problem.picks[slot] = row
    problem.scores = without + np.outer(columns[best], coefficient)
    return True


@register_joint("bilevel")
def bilevel(data: ClassData, label_ids: np.ndarray, budget: int, seed: int,
            oversample: int = 1, demand_rows: int = 4000, candidate_rows: int = 8000,
            passes: int = 3, shortlist: int = 64, standardize: bool = True,
            probe_passes: int = 2, probe_shortlist: int = 8, probe_c: float = 1.0
            ) -> Selection:
    raw = x = data.features.astype(np.float32, copy=False)
    if standardize:
        x = standardized(x)
        data = ClassData(x)
    start = select_per_class("herding", data, label_ids, budget, seed, oversample=oversample)
    labels = np.unique(label_ids)
    classes = int(label_ids.max()) + 1 if len(label_ids) else 0
    first = start.ranks < budget
    picks = start.indices[first].tolist()
    refined = [int(c) for c in labels if int((label_ids == c).sum()) > budget]
    if len(labels) < 2 or not refined:
        return start
    rng = np.random.default_rng(derive_seed(DEMAND_SEED_TAG, seed))
    demand = np.sort(rng.choice(len(label_ids), min(demand_rows, len(label_ids)),
                                replace=False))
    problem = _Problem(x, label_ids, classes, picks, demand)
    pools = {}
    for c in refined:
        rows = np.flatnonzero(label_ids == c)
        if len(rows) > candidate_rows:
            rows = np.sort(np.random.default_rng(derive_seed(DEMAND_SEED_TAG, seed, c)).choice(
                rows, candidate_rows, replace=False))
        pools[c] = rows
    # Every class's kernel is kept across sweeps when they fit in KEEP_KERNELS_BYTES; else
    # one class's at a time, computed again each sweep (many-class data): same numbers.
    keep = len(demand) * sum(len(r) for r in pools.values()) * 4 <= KEEP_KERNELS_BYTES
    kernels: dict[int, np.ndarray] = {}
    for _ in range(passes):
        moved = False
        for c in refined:
            kernel = kernels.get(c)
            if kernel is None:
                kernel = problem.demand_x @ x[pools[c]].T  # [demand, candidates]
                if keep:
                    kernels[c] = kernel
            for slot in range(len(problem.picks)):
                if int(label_ids[problem.picks[slot]]) == c:
                    moved |= _refine_pick(problem, slot, pools[c], kernel, shortlist)
            del kernel
        problem.lr = _best_lr(problem.scores, problem.demand_y)
        if not moved:
            break
    if probe_passes:
        picks, _ = refine_with_probe(raw, label_ids, problem.picks, refined, demand, probe_c,
                                     probe_shortlist, probe_passes)
        problem = _Problem(x, label_ids, classes, picks, demand)
    return _with_reserve(start, problem, label_ids, budget)


def _with_reserve(start: Selection, problem: _Problem, label_ids: np.ndarray, budget: int
                  ) -> Selection:
    """Per class: the refined picks (herding's pick order, swapped rows in place), then
    herding's ranked rows the picks did not take, to herding's ranked length."""
    base = problem.loss()
    chosen, ranks, scores = [], [], []
    for c in np.unique(label_ids):
        ranked = start.indices[label_ids[start.indices] == c]
        mine = [p for p in problem.picks if label_ids[p] == c]
        taken = set(mine)
        reserve = [r for r in ranked.tolist() if r not in taken][:len(ranked) - len(mine)]
        rows = mine + reserve
        chosen.append(np.asarray(rows, dtype=np.int64))
        ranks.append(np.arange(len(rows)))
        share = [problem.loss(problem.scores - problem.share(r)) - base for r in mine]
        scores.append(np.asarray(share + [np.nan] * len(reserve), dtype=np.float64))
    indices = np.concatenate(chosen)
    return Selection(indices, np.concatenate(ranks), np.concatenate(scores),
                     np.ones(len(indices)), dict(start.shortfall))
