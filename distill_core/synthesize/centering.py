"""Selection features less the pool's mean, L2-normalised again (`synthesize.center_features`).

A static encoder's sentence vectors (means of token vectors) share a large common part, so
on the unit sphere they crowd around one direction and k-means and herding on them follow
sentence length and frequent tokens more than meaning. Subtracting the pool's mean vector and
normalising again spreads them out. Euclidean k-means and herding are unchanged by the shift
alone; what changes the picks is the normalisation around the new centre.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from distill_core.signals.static_encoder import is_static


def centering_on(mode: bool | str, model: str, fitted: bool = False) -> bool:
    """Whether selection centres its features: true, false, or `auto` (true for a static
    encoder's distilled table, `static:<encoder>` with `static_fit.rows: 0`; false for a
    transformer's vectors and for a table fitted to them, which selects best raw, as the
    transformer's do: benchmarks/RESULTS.md)."""
    return (is_static(model) and not fitted) if mode == "auto" else bool(mode)


def run_centres_features(cfg: Any) -> bool:
    """Whether a run's selection centres its features (`synthesize.center_features` resolved
    against `signals.model` and its `static_fit`)."""
    return centering_on(cfg.synthesize.center_features, cfg.signals.model,
                        cfg.signals.static_fit.rows > 0)


def centered(features: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Each row less `mean`, scaled to unit length (a row equal to the mean stays zero)."""
    shifted = np.asarray(features, dtype=np.float32) - np.asarray(mean, dtype=np.float32)
    norms = np.linalg.norm(shifted, axis=1, keepdims=True)
    shifted /= np.maximum(norms, 1e-12)  # in place: one copy of the rows, not two
    return shifted
