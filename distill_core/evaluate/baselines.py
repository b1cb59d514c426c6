"""The baselines, filtered like the distilled sets: random subsets and the full split.

A distilled set went through the filter stage (dedup, contamination against the
evaluation split, teacher consistency when configured) and was refilled from
its method's ranking; a baseline that skipped them would train on rows the
distilled set was not allowed to keep. So `random_baseline` ranks each class
with the `random` selector (`per_class x oversample` rows: the seed's draw,
then the rest of the permutation), puts that ranking through the same
`filter_candidates` with the same settings and context, and keeps the first
`per_class` survivors of each class, the same refill rule. `full_baseline` is
the training split after the contamination filter alone (no dedup: full means
every training row that does not copy evaluation data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from distill_core.artifacts.schemas import SELECTION_SCHEMA
from distill_core.filter.stage import FilterContext, clean_corpus, filter_candidates
from distill_core.filter_settings import FilterSection
from distill_core.synthesize.base import select_per_class


@dataclass(frozen=True)
class BaselineFilters:
    """The run's filters as the baselines meet them.

    Attributes:
        section: the run's `filter` settings.
        context: what the filters read (vectors, teacher p(label), the evaluation texts).
        oversample: the random ranking's length per class, as a multiple of the budget.
        pool: positions in the training split that methods draw from (the `clean` rows when
            the corpus is filtered first); None: every training row.
    """

    section: FilterSection
    context: FilterContext
    oversample: int = 1
    pool: np.ndarray | None = None


@dataclass(frozen=True)
class Subset:
    """A baseline's training rows (positions in the training split) and how many rows it is
    below its budget (0 for `full`, which has none)."""

    rows: np.ndarray
    short: int = 0


def rows_short(label_ids: np.ndarray, n_labels: int, per_class: int) -> int:
    """Rows missing from a set to reach `per_class` rows of every one of `n_labels` classes."""
    counts = np.bincount(np.asarray(label_ids, dtype=np.int64), minlength=n_labels)
    return int(np.maximum(per_class - counts[:n_labels], 0).sum())


def _ranking_table(chosen: pa.Table, ranks: np.ndarray, seed: int) -> pa.Table:
    """The random ranking (rows `chosen`, in rank order) as candidates, in the selection
    schema the filter stage reads."""
    n = chosen.num_rows
    ids = chosen.column("example_id")
    return pa.table({
        "example_id": ids, "replicate": pa.array([0] * n, pa.int32()),
        "text": chosen.column("text"), "text_pair": chosen.column("text_pair"),
        "label": chosen.column("label"), "label_id": chosen.column("label_id"),
        "parent_ids": pa.array([[i] for i in ids.to_pylist()], pa.list_(pa.string())),
        "method": pa.array(["random"] * n, pa.string()), "run_id": pa.array([""] * n),
        "seed": pa.array([seed] * n, pa.int64()), "rank": pa.array(ranks, pa.int32()),
        "score": pa.nulls(n, pa.float64()), "weight": pa.array(np.ones(n), pa.float64()),
        "soft_label": pa.nulls(n, pa.list_(pa.float32())),
    }, schema=SELECTION_SCHEMA)


def random_baseline(train: pa.Table, train_x: np.ndarray, n_labels: int, per_class: int,
                    seed: int, filters: BaselineFilters | None) -> Subset:
    """The seed's stratified random subset of `train` at `per_class`; with `filters`, drawn
    from their pool, filtered and refilled from the rest of the permutation."""
    return random_rows(train.column("label_id").to_numpy(),
                       lambda rows: train.take(pa.array(rows, pa.int64())), n_labels,
                       per_class, seed, filters)


def random_rows(y: np.ndarray, take: Callable[[np.ndarray], pa.Table], n_labels: int,
                per_class: int, seed: int, filters: BaselineFilters | None) -> Subset:
    """`random_baseline` from the training split's label ids alone: the draw needs no
    features, and `take` reads just the drawn rows (by training position) for the filters."""
    pool = np.arange(len(y)) if filters is None or filters.pool is None \
        else np.asarray(filters.pool)
    no_features = np.empty((len(pool), 0), np.float32)  # `random` uses only the count
    if filters is None:
        picked = select_per_class("random", no_features, y, per_class, seed)
        return Subset(picked.indices, rows_short(y[picked.indices], n_labels, per_class))
    picked = select_per_class("random", no_features, y[pool], per_class, seed,
                              oversample=filters.oversample)
    rows = pool[picked.indices]
    chosen = take(rows)
    result = filter_candidates(_ranking_table(chosen, picked.ranks, seed), per_class,
                               filters.section, filters.context)
    drawn = dict(zip(chosen.column("example_id").to_pylist(), rows.tolist(), strict=True))
    kept = np.fromiter((drawn[e] for e in result.kept.column("example_id").to_pylist()),
                       dtype=np.int64, count=result.kept.num_rows)
    return Subset(kept, rows_short(y[kept], n_labels, per_class))


def full_baseline(train: pa.Table, filters: BaselineFilters | None) -> Subset:
    """Every training row, less those the contamination filter (when enabled) drops."""
    if filters is None or not filters.section.contamination.enabled:
        return Subset(np.arange(train.num_rows))
    only_contamination = FilterSection(exact_dedup=False,
                                       contamination=filters.section.contamination)
    kept = clean_corpus(train, only_contamination, filters.context).kept
    position = {e: i for i, e in enumerate(train.column("example_id").to_pylist())}
    return Subset(np.fromiter((position[e] for e in kept.column("example_id").to_pylist()),
                              dtype=np.int64, count=kept.num_rows))
