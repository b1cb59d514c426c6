"""Per-example weights learned for a chosen set, so the linear probe trained on it fits the pool.

Issue 14's "learned per-example weights": the set's rows stay; each gets a training weight.
The inner learner is the evaluation's probe (L2-regularised logistic regression at inverse
strength `c`, unpenalised intercept, `row_space_probe.py`) trained with the weights; the
outer loss is its cross-entropy on a seeded sample of pool rows at its best temperature (as
`probe_refine.py` scores a set: only the probe's direction and bias count, not its scale).
The gradient of the outer loss with respect to the weights comes from the implicit function
theorem at the inner optimum: d theta / d w_i = -H^-1 grad l_i(theta), H the inner
objective's Hessian, so dL / d w_i = -grad l_i . H^-1 grad L: one linear solve per outer
step, by conjugate gradients on Hessian-vector products.

The weights of each class keep a mean of 1 (the class's total weight is its row count), so
they redistribute weight between a class's rows and cannot scale the whole set up (which
would only weaken the probe's regularisation), nor shift the class balance. Before that
normalisation each weight lies in [1 / sqrt(`max_ratio`), sqrt(`max_ratio`)], so two weights
of one class differ by at most a factor `max_ratio`.
Outer optimisation: L-BFGS-B on the log-weights, at most `steps` iterations, from all 1.
Deterministic for its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize
from scipy.sparse.linalg import LinearOperator, cg

from distill_core.seeds import derive_seed
from distill_core.synthesize.base import Selection
from distill_core.synthesize.probe_refine import TEMPERATURES, one_blas_thread
from distill_core.synthesize.row_space_probe import fit_row_space_probe, row_space

INNER_TOL = 1e-7  # the implicit gradient holds at the inner optimum: fit it tightly
CG_RTOL = 1e-10


def _normalised(log_weights: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Weights exp(s), scaled so that every class's mean is 1."""
    weights = np.exp(log_weights)
    for members in groups:
        weights[members] *= len(members) / weights[members].sum()
    return weights


class _WeightProblem:
    """The outer loss of a weighting and its gradient, in the set's row space."""

    def __init__(self, x: np.ndarray, y: np.ndarray, demand_x: np.ndarray,
                 demand_y: np.ndarray, c: float) -> None:
        self.x, self.c = np.asarray(x, dtype=np.float64), c
        self.classes, self.target = np.unique(y, return_inverse=True)
        self.basis, self.rows = row_space(self.x)
        position = {int(label): i for i, label in enumerate(self.classes)}
        keep = np.isin(demand_y, self.classes)  # a demand row of a class the set lacks: no say
        self.demand = np.asarray(demand_x, dtype=np.float64)[keep] @ self.basis
        self.demand_target = np.asarray([position[int(v)] for v in demand_y[keep]])
        self.groups = [np.flatnonzero(self.target == k) for k in range(len(self.classes))]

    def _parameters(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The weighted probe's (row-space coefficients [k', r], intercepts [k']), k' = 1
        for two classes."""
        model = fit_row_space_probe(self.x, self.classes[self.target], self.c, 10_000,
                                    INNER_TOL, sample_weight=weights)
        return model.coef_ @ self.basis, np.asarray(model.intercept_, dtype=np.float64)

    @staticmethod
    def _logits(rows: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        z = rows @ a.T + b
        return np.concatenate([np.zeros_like(z), z], axis=1) if a.shape[0] == 1 else z

    def _hessian_product(self, v: np.ndarray, rows1: np.ndarray, p: np.ndarray,
                         weights: np.ndarray) -> np.ndarray:
        """H v for the inner objective sum_i w_i l_i + |a|^2 / (2c) (scikit-learn's, times
        sum(w), a constant here: the class means keep it at n); v, H v: [k', r + 1]."""
        z = rows1 @ v.T  # [n, k']: the change of each row's logits
        if v.shape[0] == 1:  # binary: curvature p (1 - p) of the one logit
            curved = z * (p * (1.0 - p))
        else:  # softmax: (diag(p) - p p^T) z per row
            curved = p * (z - (p * z).sum(1, keepdims=True))
        product = (curved * weights[:, None]).T @ rows1
        product[:, :-1] += v[:, :-1] / self.c  # the intercepts are not penalised
        return product

    def _solve(self, outer: np.ndarray, rows1: np.ndarray, p: np.ndarray,
               weights: np.ndarray) -> np.ndarray:
        """H^-1 outer by conjugate gradients on Hessian-vector products: no [k (r+1)]^2
        matrix (a 14-class set of 20 per class would need a 4,000-square one). Multinomial
        logits have one null direction (the same shift of every intercept), which the
        outer gradient does not see (its logits' gradient sums to 0 per row): CG from 0
        stays out of it."""
        shape = outer.shape

        def matvec(v: np.ndarray) -> np.ndarray:
            return self._hessian_product(v.reshape(shape), rows1, p, weights).ravel()

        operator = LinearOperator((outer.size, outer.size), matvec=matvec, dtype=np.float64)
        solved, _ = cg(operator, outer.ravel(), rtol=CG_RTOL, atol=0.0,
                       maxiter=20 * outer.size)
        return solved.reshape(shape)

    def value_and_gradient(self, log_weights: np.ndarray) -> tuple[float, np.ndarray]:
        weights = _normalised(log_weights, self.groups)
        a, b = self._parameters(weights)
        z = self._logits(self.demand, a, b)
        m = len(self.demand_target)
        onehot = np.eye(z.shape[1])[self.demand_target]
        best, temperature, p = np.inf, 1.0, None
        for t in TEMPERATURES:
            scaled = t * z
            scaled -= scaled.max(1, keepdims=True)
            log_p = scaled - np.log(np.exp(scaled).sum(1, keepdims=True))
            loss = float(-(log_p * onehot).sum() / m)
            if loss < best:
                best, temperature, p = loss, t, np.exp(log_p)
        # d loss / d logits at the chosen temperature, then onto the inner parameters
        d_logits = temperature * (p - onehot) / m  # [m, classes]
        inner = self._logits(self.rows, a, b)
        p_inner = np.exp(inner - inner.max(1, keepdims=True))
        p_inner /= p_inner.sum(1, keepdims=True)
        residual = p_inner - np.eye(inner.shape[1])[self.target]  # d l_i / d logits
        rows1 = np.concatenate([self.rows, np.ones((len(self.rows), 1))], axis=1)
        demand1 = np.concatenate([self.demand, np.ones((m, 1))], axis=1)
        if a.shape[0] == 1:  # binary: one logit (the second class's), parameters [1, r + 1]
            d_logits, residual, p_inner = d_logits[:, 1:], residual[:, 1:], p_inner[:, 1:]
        outer = d_logits.T @ demand1  # [k', r + 1]
        solved = self._solve(outer, rows1, p_inner, weights)
        d_weights = -np.einsum("ik,ij,kj->i", residual, rows1, solved)
        d_log = np.zeros_like(weights)
        for members in self.groups:
            w = weights[members]
            d_log[members] = w * (d_weights[members] - (w @ d_weights[members]) / len(members))
        return best, d_log


def learn_weights(x: np.ndarray, y: np.ndarray, demand_x: np.ndarray, demand_y: np.ndarray,
                  c: float = 1.0, max_ratio: float = 16.0, steps: int = 30) -> np.ndarray:
    """Weights for the rows of x (labels y, at least two classes), each class's mean 1,
    that lower the weighted probe's loss on the demand rows; all 1 when they do not."""
    with one_blas_thread():
        problem = _WeightProblem(x, y, demand_x, demand_y, c)
        half = float(np.log(max_ratio)) / 2
        start = np.zeros(len(x))
        first, _ = problem.value_and_gradient(start)
        result = optimize.minimize(problem.value_and_gradient, start, jac=True,
                                   method="L-BFGS-B", bounds=[(-half, half)] * len(x),
                                   options={"maxiter": steps})
        if not result.fun < first:
            return np.ones(len(x))
        return _normalised(result.x, problem.groups)


WEIGHT_SEED_TAG = 1_403  # keeps the weights' demand sample apart from bilevel's (1_402)


@dataclass(frozen=True)
class WeightSettings:
    """How a chosen set's weights are learned (`synthesize.weights`); `c`: the probe's."""

    demand_rows: int = 4000
    max_ratio: float = 16.0
    steps: int = 30
    c: float = 1.0


def demand_sample(pool_rows: int, seed: int, rows: int, tag: int = WEIGHT_SEED_TAG
                  ) -> np.ndarray:
    """The seeded pool rows (sorted) a set's weights are fitted to: all of them up to `rows`
    (`tag` keeps another user's draw, e.g. the learned labels' target, apart)."""
    if pool_rows <= rows:
        return np.arange(pool_rows)
    rng = np.random.default_rng(derive_seed(tag, seed))
    return np.sort(rng.choice(pool_rows, rows, replace=False))


def weigh_picks(x: np.ndarray, y: np.ndarray, picks: np.ndarray, seed: int,
                settings: WeightSettings) -> np.ndarray:
    """Learned weights of pool rows `picks` (indices into x, y), fitted to a seeded demand
    sample of the same pool; all 1 when the picks hold fewer than two classes."""
    if len(np.unique(y[picks])) < 2:
        return np.ones(len(picks))
    demand = demand_sample(len(y), seed, settings.demand_rows)
    return learn_weights(x[picks], y[picks], x[demand], y[demand], settings.c,
                         settings.max_ratio, settings.steps)


def weigh_selection(selection: Selection, x: np.ndarray, y: np.ndarray, budget: int,
                    seed: int, settings: WeightSettings) -> Selection:
    """`selection` with learned weights on each class's first `budget` rows (its picks);
    the reserve the filter stage refills from keeps weight 1."""
    picked = np.flatnonzero(selection.ranks < budget)
    weights = np.ones(len(selection.indices))
    weights[picked] = weigh_picks(x, y, selection.indices[picked], seed, settings)
    return replace(selection, weights=weights)
