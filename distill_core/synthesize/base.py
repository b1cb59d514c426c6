"""The selection interface: a method picks `budget` rows of one class's feature matrix.

A selector is a function `(features, budget, seed, **params) -> ClassSelection`
registered by name in `SELECTORS`. `select_per_class` applies it to every
class and records where a class had fewer rows than the budget (all its rows
are kept, and the shortfall is reported in the manifest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ClassSelection:
    """Chosen row indices (into the class's matrix), in rank order, with a per-row score."""

    indices: np.ndarray
    scores: np.ndarray


Selector = Callable[..., ClassSelection]
SELECTORS: dict[str, Selector] = {}


def register(name: str) -> Callable[[Selector], Selector]:
    def decorate(function: Selector) -> Selector:
        SELECTORS[name] = function
        return function

    return decorate


@dataclass
class Selection:
    """Selected corpus row indices for all classes, with ranks, scores and shortfalls."""

    indices: np.ndarray
    ranks: np.ndarray
    scores: np.ndarray
    shortfall: dict[int, dict[str, int]] = field(default_factory=dict)


def class_seed(seed: int, label_id: int) -> np.random.SeedSequence:
    """Independent, reproducible randomness per (run seed, class)."""
    return np.random.SeedSequence([seed, label_id])


def select_per_class(method: str, features: np.ndarray, label_ids: np.ndarray, budget: int,
                     seed: int, params: dict[str, Any] | None = None) -> Selection:
    """Run selector `method` on every class; a class with <= budget rows keeps all of them."""
    if method not in SELECTORS:
        raise KeyError(f"unknown selection method {method!r}; known: {sorted(SELECTORS)}")
    selector = SELECTORS[method]
    chosen, ranks, scores = [], [], []
    shortfall: dict[int, dict[str, int]] = {}
    for label_id in np.unique(label_ids):
        rows = np.flatnonzero(label_ids == label_id)
        if len(rows) <= budget:
            picked = ClassSelection(np.arange(len(rows)), np.full(len(rows), np.nan))
            if len(rows) < budget:
                shortfall[int(label_id)] = {"available": int(len(rows)), "budget": budget}
        else:
            sub_seed = int(class_seed(seed, int(label_id)).generate_state(1)[0])
            picked = selector(features[rows], budget, sub_seed, **(params or {}))
            if len(picked.indices) != budget or len(set(picked.indices.tolist())) != budget:
                raise RuntimeError(f"{method} returned {len(picked.indices)} rows, not {budget} "
                                   "distinct rows")
        chosen.append(rows[picked.indices])
        ranks.append(np.arange(len(picked.indices)))
        scores.append(picked.scores)
    return Selection(np.concatenate(chosen), np.concatenate(ranks), np.concatenate(scores),
                     shortfall)
