"""The selection interface: a method ranks rows of one class, its `budget` picks first.

A selector is a function `(data: ClassData, budget, seed, ranked=None, **params) ->
ClassSelection` registered by name in `SELECTORS`, with whether it needs teacher
signals. It returns `ranked` rows (default: `budget`) in rank order; the first
`budget` are exactly its selection at that budget, the rest continue its own
order (the next greedy picks, the permutation, the next members of each
cluster) and are the reserve the filter stage refills from when a filter drops
a pick. `select_per_class` applies it to every class, with `ranked = budget x
oversample`, and records where a class had fewer rows than the budget (all its
rows are kept, and the shortfall is reported in the manifest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distill_core.seeds import derive_seed, seed_sequence


@dataclass
class ClassData:
    """One class's rows: features, and teacher signals where the method needs them."""

    features: np.ndarray
    grad_logits: np.ndarray | None = None  # [m, C]: p - onehot(y)
    el2n: np.ndarray | None = None  # [m]
    grad_features: np.ndarray | None = None  # the teacher head's inputs, when not `features`

    def __len__(self) -> int:
        return len(self.features)

    def take(self, rows: np.ndarray) -> ClassData:
        def part(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[rows]

        return ClassData(self.features[rows], part(self.grad_logits), part(self.el2n),
                         part(self.grad_features))


@dataclass
class ClassSelection:
    """Chosen row indices (into the class's rows), in rank order, with a per-row score.

    `weights` are per-row importance weights for methods that produce them
    (gradient matching with weights kept); None means uniform.
    """

    indices: np.ndarray
    scores: np.ndarray
    weights: np.ndarray | None = None


Selector = Callable[..., ClassSelection]


@dataclass(frozen=True)
class SelectorSpec:
    function: Selector
    needs_teacher: bool


SELECTORS: dict[str, SelectorSpec] = {}
# Selectors that choose every class's rows together: (data, label_ids, budget, seed,
# oversample=1, **params) -> Selection, under the same rules as `select_classes` (a class
# with <= budget rows kept whole, the first `budget` rows of a class its selection).
JOINT_SELECTORS: dict[str, Callable[..., Selection]] = {}


def register(name: str, needs_teacher: bool = False) -> Callable[[Selector], Selector]:
    def decorate(function: Selector) -> Selector:
        SELECTORS[name] = SelectorSpec(function, needs_teacher)
        return function

    return decorate


def register_joint(name: str) -> Callable[[Callable[..., Selection]],
                                         Callable[..., Selection]]:
    def decorate(function: Callable[..., Selection]) -> Callable[..., Selection]:
        JOINT_SELECTORS[name] = function
        return function

    return decorate


@dataclass
class Selection:
    """Selected row indices for all classes, with ranks, scores, weights and shortfalls."""

    indices: np.ndarray
    ranks: np.ndarray
    scores: np.ndarray
    weights: np.ndarray
    shortfall: dict[int, dict[str, int]] = field(default_factory=dict)
    soft_labels: np.ndarray | None = None  # [rows, classes] learned labels, aligned with indices


def class_seed(seed: int, label_id: int) -> np.random.SeedSequence:
    """Independent, reproducible randomness per (run seed, class)."""
    return seed_sequence(seed, label_id)


def ranked_length(budget: int, ranked: int | None, available: int) -> int:
    """How many rows a selector ranks: `ranked` (default `budget`), at most `available`."""
    wanted = budget if ranked is None else ranked
    if wanted < budget:
        raise ValueError(f"ranked ({wanted}) must be at least the budget ({budget})")
    return min(wanted, available)


def select_per_class(method: str, data: ClassData | np.ndarray, label_ids: np.ndarray,
                     budget: int, seed: int, params: dict[str, Any] | None = None,
                     oversample: int = 1) -> Selection:
    """Run selector `method` on every class; a class with <= budget rows keeps all of them.

    `data`: the rows' features and teacher signals (`ClassData`), or a bare feature matrix
    for methods that need no teacher. `oversample`: each class's ranking runs to
    `budget x oversample` rows (fewer where the class or the method's pool is smaller); its
    first `budget` rows are the selection at `oversample = 1`.
    """
    if oversample < 1:
        raise ValueError(f"oversample must be 1 or more, got {oversample}")
    if method in JOINT_SELECTORS:
        data = data if isinstance(data, ClassData) else ClassData(data)
        return JOINT_SELECTORS[method](data, label_ids, budget, seed, oversample=oversample,
                                       **(params or {}))
    if method not in SELECTORS:
        raise KeyError(f"unknown selection method {method!r}; known: "
                       f"{sorted(SELECTORS.keys() | JOINT_SELECTORS.keys())}")
    spec = SELECTORS[method]
    data = data if isinstance(data, ClassData) else ClassData(data)
    if spec.needs_teacher and (data.grad_logits is None or data.el2n is None):
        raise ValueError(f"method {method!r} needs teacher signals (grad_logits, el2n)")

    def pick(rows: np.ndarray, sub_seed: int, ranked: int) -> ClassSelection:
        return spec.function(data.take(rows), budget, sub_seed, ranked=ranked, **(params or {}))

    return select_classes(method, label_ids, budget, seed, oversample, pick)


ClassPicker = Callable[[np.ndarray, int, int], ClassSelection]  # (class rows, seed, ranked)


def select_classes(method: str, label_ids: np.ndarray, budget: int, seed: int,
                   oversample: int, pick: ClassPicker) -> Selection:
    """The per-class loop of `select_per_class`, with `pick` ranking one class's rows: a
    class with <= budget rows keeps all of them (a shortfall when fewer), the others are
    ranked to `budget x oversample` rows with the class's own seed. Shared by the in-memory
    and the streamed selections, so both follow the same rules."""
    chosen, ranks, scores, weights = [], [], [], []
    shortfall: dict[int, dict[str, int]] = {}
    for label_id in np.unique(label_ids):
        rows = np.flatnonzero(label_ids == label_id)
        if len(rows) <= budget:
            picked = ClassSelection(np.arange(len(rows)), np.full(len(rows), np.nan))
            if len(rows) < budget:
                shortfall[int(label_id)] = {"available": int(len(rows)), "budget": budget}
        else:
            sub_seed = derive_seed(seed, int(label_id))
            ranked = min(len(rows), budget * oversample)
            picked = pick(rows, sub_seed, ranked)
            got = len(picked.indices)
            if not budget <= got <= ranked or len(set(picked.indices.tolist())) != got:
                raise RuntimeError(f"{method} returned {got} rows, not {budget} to {ranked} "
                                   "distinct rows")
        chosen.append(rows[picked.indices])
        ranks.append(np.arange(len(picked.indices)))
        scores.append(picked.scores)
        weights.append(picked.weights if picked.weights is not None
                       else np.ones(len(picked.indices)))
    return Selection(np.concatenate(chosen), np.concatenate(ranks), np.concatenate(scores),
                     np.concatenate(weights), shortfall)
