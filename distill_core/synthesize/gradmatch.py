"""`gradmatch`: pick the examples whose classifier-layer gradients best match the class's mean.

Orthogonal matching pursuit (GradMatch, Killamsetty et al. 2021; CRAIG,
Mirzasoleiman et al. 2020) on the teacher's per-example gradient of the loss
with respect to the classifier weights, g_i = a_i ⊗ x_i with a_i = p_i - y_i:
the gradient DiLM matches. Target: the class's mean gradient ḡ. At each step
pick the unpicked row most aligned with the residual r, then refit
non-negative weights w on the picked rows so that Σ w_j g_j ≈ ḡ, and update r.
Inner products never build the C·d gradients of the whole class:
<g_i, R> = a_i · (R x_i) with R the residual as a C×d matrix.

Attributes: `keep_weights` (default False: uniform weights; True: the OMP
weights, normalised to mean 1, become per-example training weights); `at`:
the classifier the gradients are taken at, `teacher` (the trained probe: hard
examples weigh most) or `init` (zero weights, p uniform: every row of a class
has the same a_i, so the target is the class's mean embedding, the start of
training that DiLM-style matching looks at).
Input: one class's features and teacher `grad_logits`. Output: rows in pick
order (to `ranked` rows: the pursuit continued); score = relative residual
|r| / |ḡ| after the pick. Kept weights are those of the fit at the budget; rows
ranked beyond it (the filter stage's reserve) weigh 1, the mean weight.
References: Killamsetty et al., GRAD-MATCH, ICML 2021; Mirzasoleiman et al., CRAIG,
ICML 2020; Maekawa et al., DiLM, 2024.
"""

from __future__ import annotations

import numpy as np

from distill_core.synthesize.base import ClassData, ClassSelection, ranked_length, register


def _nnls(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    from scipy.optimize import nnls  # imported when used: not on a cached rerun

    return nnls(a, b)


@register("gradmatch", needs_teacher=True)
def gradient_matching(data: ClassData, budget: int, seed: int, keep_weights: bool = False,
                      at: str = "init", ranked: int | None = None) -> ClassSelection:
    assert data.grad_logits is not None
    # The classifier layer's input: the frozen embeddings for the probe teacher, the
    # fine-tuned encoder's pooled output for a fine-tuned teacher.
    source = data.grad_features if data.grad_features is not None else data.features
    x = source.astype(np.float64, copy=False)
    a = data.grad_logits.astype(np.float64, copy=False)
    if at == "init":
        # p = 1/C for every row; y is the class's one-hot, recovered from the teacher's p - y.
        classes = a.shape[1]
        own = int(np.argmin(a.mean(axis=0)))
        a = np.tile(np.full(classes, 1.0 / classes) - np.eye(classes)[own], (len(x), 1))
    elif at != "teacher":
        raise ValueError(f"gradmatch: `at` must be 'teacher' or 'init', not {at!r}")
    target = (a.T @ x) / len(x)  # mean gradient as a C x d matrix
    target_norm = float(np.linalg.norm(target)) or 1.0
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(x, axis=1)
    norms[norms == 0] = np.inf  # a zero gradient can never reduce the residual
    residual = target.copy()
    taken = np.zeros(len(x), dtype=bool)
    chosen: list[int] = []
    scores: list[float] = []
    weights = at_budget = np.zeros(0)
    for step in range(ranked_length(budget, ranked, len(x))):
        alignment = np.einsum("nc,nc->n", a, x @ residual.T) / norms
        alignment[taken] = -np.inf
        row = int(np.argmax(alignment))
        taken[row] = True
        chosen.append(row)
        picked = np.stack([np.outer(a[j], x[j]).ravel() for j in chosen], axis=1)
        weights, _ = _nnls(picked, target.ravel())
        residual = target - (picked @ weights).reshape(target.shape)
        scores.append(float(np.linalg.norm(residual)) / target_norm)
        if step == budget - 1:
            at_budget = weights
    kept = None
    if keep_weights and at_budget.sum() > 0:
        kept = np.concatenate([at_budget * budget / at_budget.sum(),
                               np.ones(len(chosen) - budget)])
    return ClassSelection(np.asarray(chosen, dtype=np.int64), np.asarray(scores), kept)
