"""Per-example weights learned for a chosen set, so the linear probe trained on it fits the pool.

Issue 14's "learned per-example weights": the set's rows stay; each gets a training weight.
The inner learner is the evaluation's probe (L2-regularised logistic regression at inverse
strength `c`, unpenalised intercept, `row_space_probe.py`) trained with the weights; the
outer loss is its cross-entropy on a seeded sample of pool rows at its best temperature (as
`probe_refine.py` scores a set: only the probe's direction and bias count, not its scale).
The gradient of the outer loss with respect to the weights comes from the implicit function
theorem at the inner optimum: d theta / d w_i = -H^-1 grad l_i(theta), H the inner
objective's Hessian, so dL / d w_i = -grad l_i . H^-1 grad L: one linear solve per outer step.

The weights of each class keep a mean of 1 (the class's total weight is its row count), so
they redistribute weight between a class's rows and cannot scale the whole set up (which
would only weaken the probe's regularisation), nor shift the class balance. Each weight lies
within a factor sqrt(`max_ratio`) of the class's geometric mean, before that normalisation.
Outer optimisation: L-BFGS-B on the log-weights, at most `steps` iterations, from all 1.
Deterministic for its inputs.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from distill_core.synthesize.probe_refine import TEMPERATURES, one_blas_thread
from distill_core.synthesize.row_space_probe import fit_row_space_probe, row_space

INNER_TOL = 1e-7  # the implicit gradient holds at the inner optimum: fit it tightly


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
        one_inner = np.eye(inner.shape[1])[self.target]
        rows1 = np.concatenate([self.rows, np.ones((len(self.rows), 1))], axis=1)
        demand1 = np.concatenate([self.demand, np.ones((m, 1))], axis=1)
        r = self.rows.shape[1]
        if a.shape[0] == 1:  # binary: one logit, the second class's
            outer = demand1.T @ d_logits[:, 1]
            residual = (p_inner - one_inner)[:, 1]  # d l_i / d z_i
            curvature = p_inner[:, 1] * p_inner[:, 0]
            hessian = (rows1 * (weights * curvature)[:, None]).T @ rows1
            hessian[:r, :r] += np.eye(r) / self.c
            per_row = rows1 * residual[:, None]  # [n, r + 1]: grad of each l_i
        else:
            k = a.shape[0]
            outer = (d_logits.T @ demand1).ravel()  # [k (r + 1)], class-major
            residual = p_inner - one_inner  # [n, k]
            per_row = (residual[:, :, None] * rows1[:, None, :]).reshape(len(rows1), -1)
            hessian = np.zeros((k * (r + 1), k * (r + 1)))
            for i in range(k):
                for j in range(k):
                    curvature = p_inner[:, i] * ((i == j) - p_inner[:, j]) * weights
                    block = (rows1 * curvature[:, None]).T @ rows1
                    hessian[i * (r + 1):(i + 1) * (r + 1), j * (r + 1):(j + 1) * (r + 1)] = block
            for i in range(k):
                span = slice(i * (r + 1), i * (r + 1) + r)
                hessian[span, span] += np.eye(r) / self.c
        # The inner objective here is sum_i w_i l_i + |a|^2 / (2c) (scikit-learn's divided by
        # sum(w), a constant: the class means keep it at n). Multinomial logits have one
        # null direction (the same shift of every intercept), which no loss sees: lstsq.
        solved = np.linalg.lstsq(hessian, outer, rcond=None)[0]
        d_weights = -(per_row @ solved)
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
