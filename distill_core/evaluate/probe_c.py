"""The probe's regularisation chosen by cross-validation on its own training rows (`C: cv`).

With 5–20 rows per class, a fixed C = 1 makes the probe's predictions follow the
set's class counts, and a method's score then says more about the regulariser
than about the rows it chose. `C: cv` states one rule that every method and
baseline gets identically and that sees nothing but the probe's training rows:

- grid C ∈ {0.01, 0.1, 1, 10, 100};
- stratified k-fold with k = min(5, rows of the smallest class), folds shuffled with
  the learner's seed, on at most `CV_MAX_ROWS` rows (a seeded stratified sample, so the
  full-data baseline costs 25 small fits, not 25 fits on the whole corpus);
- the C with the best mean held-out accuracy wins; ties go to the C nearest 1;
- a set with fewer than two rows in some class cannot be split: it keeps C = 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
CV_MAX_ROWS = 2000
MAX_FOLDS = 5
FALLBACK_C = 1.0

# fit(train row indices, C) -> predict(row indices) -> predicted labels
FitFn = Callable[[np.ndarray, float], Callable[[np.ndarray], np.ndarray]]


def stratified_subsample(y: np.ndarray, seed: int, limit: int) -> np.ndarray:
    """Row indices: all rows, or a seeded sample of `limit` keeping the class shares."""
    if len(y) <= limit:
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(np.arange(len(y)), train_size=limit, stratify=y,
                               random_state=seed)
    return np.sort(kept)


def choose_c(y: np.ndarray, fit: FitFn, seed: int) -> tuple[float, str]:
    """The C the rule above picks for training rows labelled `y` (`fit` trains the probe on
    the rows it is given), and a note saying how."""
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2 or counts.min() < 2:
        return FALLBACK_C, f"C={FALLBACK_C:g} (cv: a class has fewer than 2 rows)"
    rows = stratified_subsample(y, seed, CV_MAX_ROWS)
    folds = min(MAX_FOLDS, int(np.unique(y[rows], return_counts=True)[1].min()))
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
                  .split(rows, y[rows]))
    means = []
    for c in C_GRID:
        correct = 0
        for train, held in splits:
            predict = fit(rows[train], c)
            correct += int((predict(rows[held]) == y[rows[held]]).sum())
        means.append(correct / len(rows))
    best = max(means)
    chosen = min((c for c, m in zip(C_GRID, means, strict=True) if m == best),
                 key=lambda c: abs(np.log10(c)))
    return chosen, f"C={chosen:g} by {folds}-fold cv on {len(rows)} rows (acc {best:.3f})"
