"""Soft labels learned for a chosen set, so the soft-label probe trained on it is the best probe
its rows can make.

Issue 14's label learning (Bohdal et al., "Flexible Dataset Distillation: Learn Labels Instead
of Images", 2020; Sucholutsky & Schonlau, "Soft-Label Dataset Distillation", 2021): the set's
rows stay, each gets a learned distribution over the classes as its soft label, and the
evaluation's soft-label probe (`evaluate/soft_probe.py`: L2-regularised softmax regression at
inverse strength `c`, unpenalised intercept, the distillation loss at `temperature`) trains on
them.

Which probes labels can make: at the soft probe's optimum on rows x_i with labels q_i,

    W = c · T · Σ_i (q_i − p_i) x_iᵀ        and        Σ_i (q_i − p_i) = 0   (the intercept),

with p_i = softmax((W x_i + b) / T). So W lies in the span of the differences of the rows,
and any (W, b) with W there is the optimum for the labels q_i = p_i + A_i, where
Σ_i A_i x_iᵀ = W / (c T) and Σ_i A_i = 0 (one exact linear solve), provided every q_i is a
distribution. Scaling (W, b) by s > 0 keeps the probe's predictions and moves p_i, so the
labels use the largest s (found by bisection) at which every q_i stays non-negative: the most
confident labels that make it.

The target: the multinomial logistic regression (scikit-learn, C = 1) fitted on a seeded
sample of up to `target_rows` pool rows, in the coordinates of the set's centred span (at
most n − 1 of them). It is the best probe, by the pool's likelihood, that the set's rows can
make under the soft probe; the labels then make exactly it. Deterministic for its inputs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from distill_core.synthesize.base import Selection
from distill_core.synthesize.learned_weights import demand_sample

LABEL_SEED_TAG = 1_405  # the target's pool sample, apart from bilevel's (1_402), weights' (1_403)
TARGET_C = 1.0  # the target probe's inverse L2 strength (scikit-learn's scaling: summed loss)
BISECTION_STEPS = 60


@dataclass(frozen=True)
class LabelSettings:
    """How a chosen set's soft labels are learned (`synthesize.labels`): the pool rows the
    target is fitted on, and the evaluation probe's `c` and `temperature` they are solved for."""

    target_rows: int = 20_000
    c: float = 1.0
    temperature: float = 1.0


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def centred_span(x: np.ndarray) -> np.ndarray:
    """An orthonormal basis [dim, r] of the span of x's rows less their mean (r ≤ n − 1)."""
    rows = np.asarray(x, dtype=np.float64)
    _, singular, vt = np.linalg.svd(rows - rows.mean(axis=0), full_matrices=False)
    if not len(singular) or singular[0] == 0:
        return np.zeros((rows.shape[1], 0))
    return vt[singular > 1e-9 * singular[0]].T


def pool_probe(coordinates: np.ndarray, labels: np.ndarray, n_classes: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(W [n_classes, coordinates' width], b [n_classes]): the logistic regression (C =
    TARGET_C) fitted on pool rows given in `coordinates`, each coordinate's weights summing to
    0 over the classes (the soft probe's optimum has that form; binary: the one logit split
    evenly, as softmax). Classes absent from `labels` get −inf logits."""
    from sklearn.linear_model import LogisticRegression

    present = np.unique(labels)
    weight = np.zeros((n_classes, coordinates.shape[1]))
    bias = np.full(n_classes, -np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=TARGET_C, max_iter=5000).fit(coordinates, labels)
    coef, intercept = model.coef_, model.intercept_
    if len(present) == 2:
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    weight[present] = coef - coef.mean(axis=0)
    bias[present] = intercept - intercept.mean()
    return weight, bias


def target_probe(picks_x: np.ndarray, pool_x: np.ndarray, pool_y: np.ndarray,
                 n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(W [n_classes, dim], b [n_classes]): `pool_probe` fitted on the pool rows in the
    picks' centred span, mapped back to the features."""
    basis = centred_span(picks_x)
    weight, bias = pool_probe(np.asarray(pool_x, dtype=np.float64) @ basis, pool_y, n_classes)
    return weight @ basis.T, bias


def solve_labels(picks_x: np.ndarray, weight: np.ndarray, bias: np.ndarray, c: float,
                 temperature: float) -> tuple[np.ndarray, float]:
    """(labels [n, classes], s): soft labels on `picks_x` whose soft probe (at `c`,
    `temperature`, unit weights) has the optimum (s · weight, s · bias), for the largest s at
    which the labels are distributions. `weight`'s rows lie in the picks' centred span."""
    x = np.asarray(picks_x, dtype=np.float64)
    n = len(x)
    live = np.isfinite(bias)  # classes the target can predict; the rest get probability 0
    # Σ A_i x_i = W / (c T) and Σ A_i = 0: one system [x^T; 1^T] A = [W^T / (c T); 0]
    system = np.vstack([x.T, np.ones((1, n))])
    right = np.vstack([weight[live].T / (c * temperature), np.zeros((1, int(live.sum())))])
    steps, *_ = np.linalg.lstsq(system, right, rcond=None)  # [n, live classes]

    def labels_at(s: float) -> np.ndarray:
        p = _softmax(s * (x @ weight[live].T + bias[live]) / temperature)
        return p + s * steps

    low, high = 0.0, 1.0
    while labels_at(high).min() >= 0 and high < 1e8:
        low, high = high, 2 * high
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if labels_at(middle).min() >= 0 else (low, middle)
    labels = np.zeros((n, len(bias)))
    labels[:, live] = np.clip(labels_at(low), 0.0, None)
    labels /= labels.sum(axis=1, keepdims=True)
    return labels, low


def label_picks(x: np.ndarray, y: np.ndarray, picks: np.ndarray, seed: int,
                settings: LabelSettings, n_classes: int) -> np.ndarray:
    """Learned soft labels [len(picks), n_classes] of pool rows `picks` (indices into x, y;
    wider when y holds a larger class id); one-hot labels when the picks hold fewer than two
    classes (no probe to make)."""
    n_classes = max(n_classes, int(y.max()) + 1)
    picked_y = y[picks]
    held = np.unique(picked_y)
    if len(held) < 2:
        return np.eye(n_classes)[picked_y]
    sample = np.union1d(demand_sample(len(y), seed, settings.target_rows, LABEL_SEED_TAG),
                          picks)
    sample = sample[np.isin(y[sample], held)]  # a class the set lacks cannot be predicted
    weight, bias = target_probe(x[picks], x[sample], y[sample], n_classes)
    labels, _ = solve_labels(x[picks], weight, bias, settings.c, settings.temperature)
    return labels


def label_selection(selection: Selection, x: np.ndarray, y: np.ndarray, budget: int,
                    seed: int, settings: LabelSettings, n_classes: int) -> Selection:
    """`selection` with learned soft labels on each class's first `budget` rows (its picks);
    the reserve the filter stage refills from carries its own label, one-hot."""
    picked = np.flatnonzero(selection.ranks < budget)
    labels = np.eye(n_classes)[y[selection.indices]]
    labels[picked] = label_picks(x, y, selection.indices[picked], seed, settings, n_classes)
    return replace(selection, soft_labels=labels)
