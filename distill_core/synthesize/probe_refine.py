"""Swaps tried with the evaluation's linear probe itself in the loop (`bilevel`'s last step).

`bilevel`'s proxy learner (one step from a zero head) is what the strongly regularised probe
learns to first order; on 20-80 rows its picks are refined further here against the probe
exactly: L2-regularised logistic regression with an unpenalised intercept at inverse
strength `c`, scikit-learn's L-BFGS, i.e. `evaluate/linear_probe.py`'s model, on the
learner's own (raw) features; fitted in the set's row span (`row_space_probe.py`: the same
model and solver, 2-3x cheaper than scikit-learn's fit at these sizes).

Outer loss: the probe's cross-entropy on the demand rows at its best temperature (a power
of two in [1/8, 128]), so that only its direction and bias count, not its scale: plain
cross-entropy rewards sets that make the probe confident, and on SST-2's training holdout
refining by it lost up to 6 points of accuracy on the mean while lowering its loss
(benchmarks/RESULTS.md).

Each pick in turn: the rows of its class ranked by the first-order change of the probe's
cross-entropy (at temperature 1: a ranking, the trials decide) if the pick's coefficient
(onehot − p, the representer weight of an L2-regularised logistic regression) moved to
them, the first `shortlist` not in the set tried by refitting the probe, the best kept when
it lowers the loss; at most `passes` sweeps, fewer when a sweep
swaps nothing. Deterministic. Cost: at most passes x set size x shortlist probe fits.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import numpy as np
from threadpoolctl import threadpool_limits

from distill_core.signals.teacher import class_logits, softmax
from distill_core.synthesize.row_space_probe import RowSpaceProbe, fit_row_space_probe

TEMPERATURES = tuple(float(2.0**k) for k in range(-3, 8))


class ProbeInLoop:
    """The probe fitted on a set of rows, and its temperature-free loss on the demand rows."""

    def __init__(self, x: np.ndarray, y: np.ndarray, demand: np.ndarray, c: float,
                 max_iter: int = 2000) -> None:
        self.x, self.y, self.c, self.max_iter = x, y, c, max_iter
        self.classes = int(y.max()) + 1
        # float64 once: the loss's product would otherwise convert the rows at every trial
        self.demand_x = np.ascontiguousarray(x[demand], dtype=np.float64)
        self.demand_y = y[demand]
        self.demand_onehot = np.eye(self.classes, dtype=np.float64)[self.demand_y]
        self.fits = 0

    def fit(self, rows: list[int]) -> RowSpaceProbe:
        """The evaluation's probe (the same model as `linear_probe`) on these rows; one
        that stopped at max_iter is compared as it is (convergence is the evaluation's
        concern)."""
        self.fits += 1
        return fit_row_space_probe(self.x[rows], self.y[rows], self.c, self.max_iter)

    def logits(self, model: RowSpaceProbe, x: np.ndarray) -> np.ndarray:
        """[n, classes] scores (a binary probe's one column becomes (0, z))."""
        return class_logits(model, x, self.classes)

    def probabilities(self, model: RowSpaceProbe, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(model, x))

    def loss(self, model: RowSpaceProbe) -> float:
        """Mean cross-entropy on the demand rows at the best of `TEMPERATURES`. Laid out
        class by class ([classes, rows]): reductions over a last axis of a few classes are
        slow (as in bilevel's `_trial_losses`)."""
        z = np.ascontiguousarray(self.logits(model, self.demand_x).T, dtype=np.float64)
        shifted = z - np.maximum.reduce(z)  # each row's largest score is 0: exp never overflows
        target = shifted[self.demand_y, np.arange(z.shape[1])]
        temperatures = np.asarray(TEMPERATURES)[:, None]
        total = np.zeros((len(TEMPERATURES), z.shape[1]))
        for row in shifted:
            total += np.exp(temperatures * row)
        return float((np.log(total) - temperatures * target).mean(1).min())


def _best_rows(values: np.ndarray, count: int) -> np.ndarray:
    """Positions of the `count` smallest values, smallest first, ties by position (as a
    stable argsort of the whole array orders them), without sorting the whole array."""
    if count < len(values):
        top = np.argpartition(values, count - 1)[:count]
    else:
        top = np.arange(len(values))
    return top[np.lexsort((top, values[top]))]


def one_blas_thread() -> AbstractContextManager:
    """BLAS on one thread while the probe is refined: its products are small, and numpy's
    and scipy's OpenBLAS (two pools of their own, each spinning its threads after a call)
    alternating at every fit made bilevel 4.4x slower on a cross-validation pool on 2
    cores (`benchmarks/bench_row_space_probe.py`: 3.64 s against 0.82 s)."""
    return threadpool_limits(limits=1, user_api="blas")


def refine_with_probe(x: np.ndarray, y: np.ndarray, picks: list[int], refined: list[int],
                      demand: np.ndarray, c: float = 1.0, shortlist: int = 8,
                      passes: int = 2) -> tuple[list[int], ProbeInLoop]:
    """`picks` (row indices into x) after probe-in-the-loop swaps; only picks of the
    `refined` classes move, each to rows of its own class. Returns the picks and the probe
    (its `fits` count)."""
    with one_blas_thread():
        return _refine(x, y, picks, refined, demand, c, shortlist, passes)


def _refine(x: np.ndarray, y: np.ndarray, picks: list[int], refined: list[int],
            demand: np.ndarray, c: float, shortlist: int, passes: int
            ) -> tuple[list[int], ProbeInLoop]:
    probe = ProbeInLoop(x, y, demand, c)
    picks = list(picks)
    if shortlist < 1 or passes < 1 or len(np.unique(y[picks])) < 2:
        return picks, probe
    model = probe.fit(picks)
    best = probe.loss(model)
    members = {cls: np.flatnonzero(y == cls) for cls in refined}
    # A class's rows in float64, converted once per run of its picks (picks are grouped by
    # class): the first-order product below is float64, and numpy would otherwise convert
    # the class's rows at every pick. One class at a time bounds the memory.
    member_x: dict[int, np.ndarray] = {}

    def rows_of(cls: int) -> np.ndarray:
        if cls not in member_x:
            member_x.clear()
            member_x[cls] = np.ascontiguousarray(x[members[cls]], dtype=np.float64)
        return member_x[cls]
    gradient_of: tuple[object, np.ndarray] | None = None  # (model, its loss gradient)
    for _ in range(passes):
        moved = False
        for slot, row in enumerate(list(picks)):
            label = int(y[row])
            if label not in members:
                continue
            row = picks[slot]
            if gradient_of is None or gradient_of[0] is not model:  # only after a swap
                gradient_of = (model, probe.demand_x.T @ (
                    probe.probabilities(model, probe.demand_x) - probe.demand_onehot)
                    / len(probe.demand_y))
            gradient = gradient_of[1]
            coefficient = np.eye(probe.classes)[label] - probe.probabilities(model, x[[row]])[0]
            first_order = rows_of(label) @ (gradient @ coefficient)
            candidates = _best_rows(first_order, shortlist + len(picks))
            candidates = members[label][candidates]
            candidates = candidates[~np.isin(candidates, picks)][:shortlist]
            for candidate in candidates:
                trial = picks.copy()
                trial[slot] = int(candidate)
                trial_model = probe.fit(trial)
                value = probe.loss(trial_model)
                if value < best - 1e-9:
                    best, picks, model, moved = value, trial, trial_model, True
        if not moved:
            break
    return picks, probe
