"""The filter stage (candidates -> distilled) and the corpus clean stage, on one filter pipeline.

Candidates are filtered per replicate (one dedup group per seed), visited in
(replicate, rank, label) order so the best-ranked copy of a duplicate is kept;
then the per-class budget keeps each class's best-ranked rows (`over_budget`).
The synthesize stage ranks more rows than the budget (`synthesize.oversample`),
so a dropped pick is refilled by the method's next choice; a class whose ranked
rows run out before the budget is filled is recorded in `shortfall`.
The corpus clean stage runs the same filters on the training rows in file
order, before selection. Every dropped row is in the rejects with its reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.schemas import rejects_table
from distill_core.config import FilterSection
from distill_core.filter.base import FilterInput
from distill_core.filter.pipeline import run_filters


@dataclass
class FilterContext:
    """What filters may need, looked up by example id: vectors, teacher p(label), eval data."""

    ids: dict[str, int]
    vectors: np.ndarray | None = None
    label_prob: np.ndarray | None = None
    eval_texts: list[str] | None = None
    eval_vectors: np.ndarray | None = None

    def input_for(self, table: pa.Table, groups: np.ndarray) -> FilterInput:
        rows = np.fromiter((self.ids[e] for e in table.column("example_id").to_pylist()),
                           dtype=np.int64, count=table.num_rows)
        return FilterInput(
            table=table, groups=groups,
            vectors=None if self.vectors is None else self.vectors[rows],
            label_prob=None if self.label_prob is None else self.label_prob[rows],
            eval_texts=self.eval_texts, eval_vectors=self.eval_vectors)


@dataclass
class FilterResult:
    kept: pa.Table
    rejects: pa.Table
    counts: dict[str, Any] = field(default_factory=dict)
    per_filter: list[dict[str, Any]] = field(default_factory=list)
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)
    # replicate -> label -> {"kept", "budget", "ranked"}: classes left below the budget
    shortfall: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)


def reject_rows(table: pa.Table, drops: list, replicate: np.ndarray | None) -> list[dict]:
    """Rejects rows (dicts) for `drops`, positions in `table` (with its replicates)."""
    ids = table.column("example_id").to_pylist()
    return [{"example_id": ids[d.row], "reason": d.reason, "detail": d.detail,
             "field": d.field, "replicate": None if replicate is None else int(replicate[d.row]),
             "split": "train"} for d in drops]


def _counts(rows_in: int, kept: int, rejects: list[dict]) -> dict[str, Any]:
    return {"rows_in": rows_in, "rows_out": kept, "rows_rejected": len(rejects),
            "rejects_by_reason": dict(Counter(r["reason"] for r in rejects))}


def filter_candidates(candidates: pa.Table, per_class: int, cfg: FilterSection,
                      context: FilterContext, label_names: list[str] | None = None
                      ) -> FilterResult:
    """Each replicate's candidates through the filters, then cut to `per_class` rows per class
    in rank order; `label_names` (default: the candidates' labels) are the classes whose
    shortfall is checked."""
    order = pc.sort_indices(candidates, sort_keys=[("replicate", "ascending"),
                                                   ("rank", "ascending"),
                                                   ("label_id", "ascending")])
    ordered = candidates.take(order)
    replicate = ordered.column("replicate").to_numpy()
    run = run_filters(context.input_for(ordered, replicate), cfg)
    rejects = reject_rows(ordered, run.drops, replicate)
    labels = ordered.column("label").to_pylist()
    taken: Counter[tuple[int, str]] = Counter()
    keep: list[int] = []
    ids = ordered.column("example_id").to_pylist()
    over = []
    for position in run.kept.tolist():
        slot = (int(replicate[position]), labels[position])
        if taken[slot] >= per_class:
            over.append({"example_id": ids[position], "replicate": slot[0], "split": "train",
                         "reason": "over_budget", "field": "label",
                         "detail": f"class {slot[1]!r} already has {per_class} rows"})
            continue
        taken[slot] += 1
        keep.append(position)
    if over:
        run.per_filter.append({"filter": "budget", "rows_in": len(run.kept),
                               "rows_out": len(keep), "rows_rejected": len(over),
                               "rejects_by_reason": {"over_budget": len(over)}})
    rejects += over
    distilled = ordered.take(pa.array(sorted(keep), pa.int64()))
    per_class_counts: dict[str, dict[str, int]] = {}
    for (rep, label), count in sorted(taken.items()):
        per_class_counts.setdefault(str(rep), {})[label] = count
    ranked = Counter(zip(replicate.tolist(), labels, strict=True))
    return FilterResult(distilled, rejects_table(rejects),
                        _counts(candidates.num_rows, distilled.num_rows, rejects),
                        run.per_filter, per_class_counts,
                        _shortfall(taken, ranked, per_class, label_names or sorted(set(labels))))


def _shortfall(taken: Counter, ranked: Counter, per_class: int, label_names: list[str]
               ) -> dict[str, dict[str, dict[str, int]]]:
    """Replicate -> label -> kept, budget and ranked rows, for classes kept below budget."""
    short: dict[str, dict[str, dict[str, int]]] = {}
    for rep in sorted({r for r, _ in ranked} | {r for r, _ in taken}):
        for label in label_names:
            if taken[(rep, label)] < per_class:
                short.setdefault(str(rep), {})[label] = {
                    "kept": taken[(rep, label)], "budget": per_class,
                    "ranked": ranked[(rep, label)]}
    return short


def clean_corpus(train: pa.Table, cfg: FilterSection, context: FilterContext) -> FilterResult:
    """The training rows that pass the filters, in file order, and the rejects."""
    run = run_filters(context.input_for(train, np.zeros(train.num_rows, dtype=np.int64)), cfg)
    rejects = reject_rows(train, run.drops, None)
    kept = train.take(pa.array(run.kept, pa.int64()))
    return FilterResult(kept, rejects_table(rejects),
                        _counts(train.num_rows, kept.num_rows, rejects), run.per_filter)
