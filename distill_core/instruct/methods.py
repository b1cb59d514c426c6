"""Rank a pool of instruction rows; the first `budget` indices are the selection.

Every method returns a `Ranking` of `ranked` distinct row indices (default:
`budget`; at most the pool): the first `budget` are its selection at that budget,
the rest continue its own order and are the reserve a filter refills from.
Inputs are plain arrays (prompt embeddings from `signals.encoder.SentenceEncoder`,
per-row scores from `instruct.signals`), so each method is testable alone.

- `random_ranking`: a seeded permutation; the floor.
- `kmeans_ranking`: the project's `kmeans` selector on the whole pool (k = budget,
  the real row nearest each centroid, largest cluster first).
- `score_ranking`: highest score first (IFD, or a reference loss); with
  `max_score`, rows at or above it go last (Cherry drops IFD >= 1: the prompt
  does not help there).
- `quality_diversity_ranking` (DEITA, Liu et al., ICLR 2024): rows in score order,
  each taken only if its cosine to every row already taken is below `max_cosine`;
  when no row passes the cap, the rest follow in score order, so the ranking is
  never short.
- `longest_ranking` (Zhao et al., "Long Is More for Alignment", ICML 2024): the rows
  with the longest responses first (characters; ties by row index). Needs no model: the
  baseline that quality rankings must beat.
- `influence_ranking` (LESS, Xia et al., ICML 2024): cosine of each row's projected
  LoRA gradient to the mean unit gradient of a seeded target set of `target_size`
  rows drawn from the pool, highest first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from distill_core.synthesize.base import ClassData, Selection, ranked_length


@dataclass
class Ranking:
    """Row indices in rank order and the score that ordered them (NaN where none)."""

    indices: np.ndarray
    scores: np.ndarray

    def selection(self, budget: int) -> np.ndarray:
        return self.indices[:budget]

    def as_selection(self) -> Selection:
        """The whole ranking as a `Selection` (ranks in order, weights 1), so the candidates
        are the budget followed by the reserve."""
        n = len(self.indices)
        return Selection(indices=self.indices, ranks=np.arange(n, dtype=np.int32),
                         scores=self.scores, weights=np.ones(n))


@dataclass
class RankedInputs:
    """`select_candidates`' inputs when each seed's selection is a ranking of the whole pool
    (instruction data: no classes): the method's name, the oversample, the ranking."""

    method: str
    oversample: int
    rank: Callable[[int], Ranking]

    def select(self, seed: int) -> Selection:
        return self.rank(seed).as_selection()


def _length(budget: int, ranked: int | None, available: int) -> int:
    if budget < 1:
        raise ValueError(f"budget must be 1 or more, got {budget}")
    return ranked_length(budget, ranked, available)


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def random_ranking(n: int, budget: int, seed: int, ranked: int | None = None) -> Ranking:
    """A seeded permutation of the pool, cut to `ranked` rows."""
    total = _length(budget, ranked, n)
    indices = np.random.default_rng(seed).permutation(n)[:total]
    return Ranking(indices=indices.astype(np.int64), scores=np.full(total, np.nan))


def kmeans_ranking(embeddings: np.ndarray, budget: int, seed: int,
                   ranked: int | None = None, n_init: int = 3, max_iter: int = 300,
                   threads: int | None = None) -> Ranking:
    """k-means prototypes of the prompt embeddings (the project's `kmeans` selector, with
    its `n_init`, `max_iter` and `threads` options)."""
    from distill_core.synthesize.kmeans_prototypes import kmeans_prototypes

    total = _length(budget, ranked, len(embeddings))
    k = min(budget, len(embeddings))
    chosen = kmeans_prototypes(ClassData(np.asarray(embeddings, dtype=np.float32)), k, seed,
                               n_init=n_init, max_iter=max_iter, ranked=total,
                               threads=threads)
    return Ranking(indices=np.asarray(chosen.indices, dtype=np.int64),
                   scores=np.asarray(chosen.scores, dtype=np.float64))


def score_ranking(scores: np.ndarray, budget: int, ranked: int | None = None,
                  max_score: float | None = None) -> Ranking:
    """Highest score first (ties by row index); NaN scores, and scores >= `max_score` when
    given, rank after all others."""
    scores = np.asarray(scores, dtype=np.float64)
    total = _length(budget, ranked, len(scores))
    demoted = np.isnan(scores)
    if max_score is not None:
        demoted |= scores >= max_score
    key = np.where(np.isnan(scores), -np.inf, scores)
    order = np.lexsort((np.arange(len(scores)), -key, demoted))
    return Ranking(indices=order[:total].astype(np.int64), scores=scores[order[:total]])


def longest_ranking(responses: list[str], budget: int, ranked: int | None = None) -> Ranking:
    """The longest responses first, by character count (ties by row index)."""
    lengths = np.fromiter((len(r) for r in responses), dtype=np.float64, count=len(responses))
    return score_ranking(lengths, budget, ranked)


def quality_diversity_ranking(scores: np.ndarray, embeddings: np.ndarray, budget: int,
                              max_cosine: float = 0.9, ranked: int | None = None,
                              max_score: float | None = None) -> Ranking:
    """Greedy by score with a cosine cap to the rows already taken (DEITA's filter)."""
    base = score_ranking(scores, len(scores), max_score=max_score).indices
    total = _length(budget, ranked, len(scores))
    unit = _unit(embeddings)
    taken: list[int] = []
    nearest = np.full(len(scores), -np.inf)  # each row's max cosine to the rows taken
    for row in base:
        if len(taken) == total:
            break
        if nearest[row] < max_cosine:
            taken.append(int(row))
            nearest = np.maximum(nearest, unit @ unit[row])
    if len(taken) < total:  # the cap left too few: the rest in score order
        chosen = set(taken)
        taken.extend(int(r) for r in base if int(r) not in chosen)
        taken = taken[:total]
    indices = np.asarray(taken, dtype=np.int64)
    return Ranking(indices=indices, scores=np.asarray(scores, dtype=np.float64)[indices])


def influence_ranking(gradients: np.ndarray, budget: int, seed: int, target_size: int = 32,
                      ranked: int | None = None,
                      target: np.ndarray | None = None) -> Ranking:
    """Cosine to the mean unit gradient of a target set (seeded draw from the pool unless
    `target` names its rows), highest first."""
    unit = _unit(gradients)
    if target is None:
        size = min(target_size, len(unit))
        target = np.random.default_rng(seed).choice(len(unit), size=size, replace=False)
    direction = unit[np.asarray(target)].mean(axis=0)
    norm = np.linalg.norm(direction)
    if norm == 0:
        raise ValueError("the target set's gradients cancel out (zero mean): warm the LoRA "
                         "adapters up first or draw a larger target set")
    return score_ranking(unit @ (direction / norm), budget, ranked)
