"""The filter stage: exact dedup on normalised text, then the per-class budget.

Works per replicate (one candidate set per seed). Candidates are visited in
(replicate, rank, label) order, so the best-ranked copy of a duplicate is kept
and the budget keeps each class's best-ranked rows.

Reasons: `exact_duplicate` (detail names the kept example), `over_budget`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.schemas import rejects_table
from distill_core.ingest.normalize import normalize_text


@dataclass
class FilterResult:
    distilled: pa.Table
    rejects: pa.Table
    counts: dict[str, Any] = field(default_factory=dict)
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)


def _dedup_key(text: str, pair: str | None) -> str:
    return normalize_text(text) + ("\x1f" + normalize_text(pair) if pair is not None else "")


def filter_candidates(candidates: pa.Table, per_class: int, exact_dedup: bool = True
                      ) -> FilterResult:
    order = pc.sort_indices(candidates, sort_keys=[("replicate", "ascending"),
                                                   ("rank", "ascending"),
                                                   ("label_id", "ascending")])
    ordered = candidates.take(order)
    rows = ordered.select(["example_id", "replicate", "text", "text_pair", "label"]).to_pylist()
    keep: list[int] = []
    rejects: list[dict[str, Any]] = []
    first_of_key: dict[tuple[int, str], str] = {}
    taken: Counter[tuple[int, str]] = Counter()
    for position, row in enumerate(rows):
        replicate = row["replicate"]
        if exact_dedup:
            key = (replicate, _dedup_key(row["text"], row["text_pair"]))
            if key in first_of_key:
                rejects.append({"example_id": row["example_id"], "replicate": replicate,
                                "reason": "exact_duplicate", "field": "text",
                                "detail": f"same normalised text as {first_of_key[key]}"})
                continue
            first_of_key[key] = row["example_id"]
        slot = (replicate, row["label"])
        if taken[slot] >= per_class:
            rejects.append({"example_id": row["example_id"], "replicate": replicate,
                            "reason": "over_budget", "field": "label",
                            "detail": f"class {row['label']!r} already has {per_class} rows"})
            continue
        taken[slot] += 1
        keep.append(position)
    distilled = ordered.take(pa.array(keep, pa.int64()))
    per_class_counts: dict[str, dict[str, int]] = {}
    for (replicate, label), count in sorted(taken.items()):
        per_class_counts.setdefault(str(replicate), {})[label] = count
    counts = {
        "rows_in": candidates.num_rows,
        "rows_out": distilled.num_rows,
        "rows_rejected": len(rejects),
        "rejects_by_reason": dict(Counter(r["reason"] for r in rejects)),
    }
    return FilterResult(distilled, rejects_table(rejects), counts, per_class_counts)
