"""The evaluation's linear probe fitted in its training rows' span: the same model, cheaper.

`probe_refine.py` fits the probe (L2-regularised logistic regression, unpenalised
intercept, scikit-learn's `LogisticRegression(C)` with L-BFGS) thousands of times on 10-80
rows of 384-dimensional features; there a fit here costs 1.1-1.2 ms against scikit-learn's
2.9 ms (20 SST-2 rows, BLAS on one thread: its input checks and set-up around the same
solver, and 384 coordinates instead of 20). Here the same objective is minimised by the
same solver (`scipy.optimize.minimize`, L-BFGS-B, scikit-learn's options: `gtol = tol`,
`maxls = 50`, `ftol = 64 eps`) in an orthonormal basis of the rows' span (QR of the rows):
the penalty is rotation-invariant and no weight outside the span lowers the loss, so the
optimum is the same, and from a zero start L-BFGS's iterates are the same up to that
rotation (every gradient lies in the span). What can differ is when it stops (its gradient
test is an infinity norm, not rotation-invariant): logits within a few 1e-3 of
scikit-learn's on SST-2 rows, predictions the same on 99.96 % of them
(tests/synthesize/test_row_space_probe.py).

Objective, as scikit-learn states it: mean over rows of the log loss (binary: one logit
for the second class present; else the multinomial over the classes present) plus
0.5 / (C n) times the squared weights; with sample weights s, the s-weighted mean of the
log loss plus 0.5 / (C sum(s)) times the squared weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.special import expit


@dataclass
class RowSpaceProbe:
    """A fitted probe with `LogisticRegression`'s attributes (`teacher.class_logits` reads
    them): coef_ [1 or classes, dim], intercept_, classes_ (the labels present), n_iter_."""

    coef_: np.ndarray
    intercept_: np.ndarray
    classes_: np.ndarray
    n_iter_: int


def _minimize(objective, size: int, max_iter: int, tol: float):  # noqa: ANN001, ANN202
    return optimize.minimize(objective, np.zeros(size), method="L-BFGS-B", jac=True,
                             options={"maxiter": max_iter, "maxls": 50, "gtol": tol,
                                      "ftol": 64 * np.finfo(float).eps})


def row_space(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(basis [dim, r], rows [n, r]): an orthonormal basis of x's row span and x's rows'
    coordinates in it (x = rows basis.T)."""
    basis, triangle = np.linalg.qr(np.asarray(x, dtype=np.float64).T)
    return basis, triangle.T


def fit_row_space_probe(x: np.ndarray, y: np.ndarray, C: float = 1.0,  # noqa: N803
                        max_iter: int = 2000, tol: float = 1e-4,
                        sample_weight: np.ndarray | None = None) -> RowSpaceProbe:
    """`LogisticRegression(C=C, max_iter=max_iter, tol=tol).fit(x, y, sample_weight)`'s
    model, fitted in the span of x's rows. Needs at least two labels present."""
    classes, target = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("the probe needs rows of at least two classes")
    basis, rows = row_space(x)
    n, dim = rows.shape
    if sample_weight is None:  # the unweighted sums exactly as before (same iterates)
        def weighted_mean(values: np.ndarray) -> float:
            return float(np.mean(values))

        def scaled(values: np.ndarray) -> np.ndarray:
            return values / n
        total = float(n)
    else:
        share = np.asarray(sample_weight, dtype=np.float64) / float(np.sum(sample_weight))

        def weighted_mean(values: np.ndarray) -> float:
            return float(share @ values)

        def scaled(values: np.ndarray) -> np.ndarray:
            return values * (share if values.ndim == 1 else share[:, None])
        total = float(np.sum(sample_weight))
    l2 = 1.0 / (C * total)
    if len(classes) == 2:
        positive = target.astype(np.float64)

        def binary(w: np.ndarray) -> tuple[float, np.ndarray]:
            z = rows @ w[:dim] + w[dim]
            loss = (weighted_mean(np.logaddexp(0.0, z) - positive * z)
                    + 0.5 * l2 * (w[:dim] @ w[:dim]))
            g = scaled(expit(z) - positive)
            return float(loss), np.concatenate([rows.T @ g + l2 * w[:dim], [g.sum()]])

        result = _minimize(binary, dim + 1, max_iter, tol)
        weights = result.x
        return RowSpaceProbe((basis @ weights[:dim])[None, :], weights[dim:].copy(), classes,
                             int(result.nit))
    k = len(classes)
    onehot = np.eye(k)[target]

    def multinomial(w: np.ndarray) -> tuple[float, np.ndarray]:
        w = w.reshape(k, dim + 1)
        z = rows @ w[:, :dim].T + w[:, dim]
        top = z.max(axis=1, keepdims=True)
        log_total = np.log(np.exp(z - top).sum(axis=1, keepdims=True)) + top
        loss = (weighted_mean(log_total[:, 0] - z[np.arange(n), target])
                + 0.5 * l2 * float(np.sum(w[:, :dim] ** 2)))
        g = scaled(np.exp(z - log_total) - onehot)
        return float(loss), np.concatenate([g.T @ rows + l2 * w[:, :dim],
                                            g.sum(axis=0)[:, None]], axis=1).ravel()

    result = _minimize(multinomial, k * (dim + 1), max_iter, tol)
    weights = result.x.reshape(k, dim + 1)
    return RowSpaceProbe(weights[:, :dim] @ basis.T, weights[:, dim].copy(), classes,
                         int(result.nit))
