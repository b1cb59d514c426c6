"""Run the configured filters in order, each on what the previous ones kept.

Order: quality, exact, near, contamination, teacher consistency, semantic
(cheap and certain first; semantic dedup last, so that a set of semantic duplicates keeps
its most representative row among the rows every other filter kept, never losing every
member to a representative dropped for another reason, and so that its clustering, the
costliest step, sees the fewest rows). Every filter's rows in / out / rejected by reason
are counted, so the funnel shows what each one did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distill_core.config import FilterSection
from distill_core.filter.base import Drop, FilterInput
from distill_core.filter.contamination import contamination_filter
from distill_core.filter.exact import SeenTexts, exact_dedup
from distill_core.filter.near_dup import near_dedup
from distill_core.filter.near_seen import NearSeen
from distill_core.filter.quality import quality_filter
from distill_core.filter.semantic import semantic_dedup
from distill_core.filter.teacher_consistency import teacher_consistency


@dataclass
class FilterRun:
    kept: np.ndarray                             # positions in the input, in input order
    drops: list[Drop] = field(default_factory=list)  # positions in the input
    per_filter: list[dict[str, Any]] = field(default_factory=list)


def enabled_filters(cfg: FilterSection, seen: SeenTexts | None = None,
                    near: NearSeen | None = None
                    ) -> list[tuple[str, Callable[[FilterInput], list[Drop]]]]:
    """The enabled filters in order; `seen` carries exact dedup's texts across batches, and
    `near` near dedup's kept rows."""
    q, n, s, c, t = (cfg.quality, cfg.near_dedup, cfg.semantic_dedup, cfg.contamination,
                     cfg.teacher_consistency)
    functions: dict[str, Callable[[FilterInput], list[Drop]]] = {
        "quality": lambda d: quality_filter(d, q.min_words, q.max_words, q.min_alpha_fraction),
        "exact_dedup": lambda d: exact_dedup(d, seen),
        "near_dedup": lambda d: near_dedup(d, n.shingle, n.num_perm, n.threshold, n.seed,
                                           near),
        "semantic_dedup": lambda d: semantic_dedup(d, s.epsilon, s.cluster_size, s.seed),
        "contamination": lambda d: contamination_filter(d, c.ngram, c.embedding_threshold),
        "teacher_consistency": lambda d: teacher_consistency(d, t.tau)}
    return [(name, functions[name]) for name in cfg.enabled_names()]


def run_filters(data: FilterInput, cfg: FilterSection, seen: SeenTexts | None = None,
                near: NearSeen | None = None) -> FilterRun:
    """Each enabled filter on the rows the ones before it kept. A streamed run passes the
    same `seen` and `near` for every batch, so exact and near dedup keep a text's first row
    over all of them."""
    alive = np.arange(len(data))
    drops: list[Drop] = []
    per_filter = []
    for name, apply in enabled_filters(cfg, seen, near):
        found = apply(data.take(alive))
        dropped = np.zeros(len(alive), dtype=bool)
        for drop in found:
            dropped[drop.row] = True
            drops.append(Drop(int(alive[drop.row]), drop.reason, drop.detail, drop.field))
        per_filter.append({"filter": name, "rows_in": int(len(alive)),
                           "rows_out": int((~dropped).sum()), "rows_rejected": len(found),
                           "rejects_by_reason": dict(Counter(d.reason for d in found))})
        alive = alive[~dropped]
    return FilterRun(kept=alive, drops=drops, per_filter=per_filter)
