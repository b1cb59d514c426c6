"""Exact dedup on normalised text and the per-class budget; rows in = out + rejected."""

from __future__ import annotations

import pyarrow as pa

from distill_core.artifacts.schemas import SELECTION_SCHEMA
from distill_core.filter import filter_candidates


def _candidates(rows: list[tuple[str, int, str, str, int]]) -> pa.Table:
    return pa.Table.from_pylist([
        {"example_id": eid, "replicate": rep, "text": text, "text_pair": None, "label": label,
         "label_id": 0 if label == "neg" else 1, "parent_ids": [eid], "method": "kmeans",
         "run_id": "r", "seed": rep, "rank": rank, "score": 0.0}
        for eid, rep, text, label, rank in rows], schema=SELECTION_SCHEMA)


def test_dedup_keeps_best_ranked_copy_and_budget_cuts_the_rest() -> None:
    table = _candidates([
        ("a", 0, "Great film", "pos", 1),
        ("b", 0, "great   FILM", "neg", 0),   # same normalised text, better rank: kept
        ("c", 0, "fine", "pos", 0),
        ("d", 0, "okay", "pos", 2),
        ("f", 0, "fair", "pos", 3),          # third pos row: over budget (2 per class)
        ("e", 1, "Great film", "pos", 0),    # another replicate: not a duplicate of "b"
    ])
    result = filter_candidates(table, per_class=2)
    kept = {(r["replicate"], r["example_id"]) for r in result.distilled.to_pylist()}
    assert kept == {(0, "b"), (0, "c"), (0, "d"), (1, "e")}
    rejects = {r["example_id"]: r for r in result.rejects.to_pylist()}
    assert rejects["a"]["reason"] == "exact_duplicate" and "b" in rejects["a"]["detail"]
    assert rejects["f"]["reason"] == "over_budget" and set(rejects) == {"a", "f"}
    assert result.counts["rows_in"] == result.counts["rows_out"] + result.counts["rows_rejected"]
    assert result.per_class == {"0": {"neg": 1, "pos": 2}, "1": {"pos": 1}}


def test_dedup_can_be_turned_off() -> None:
    table = _candidates([("a", 0, "same", "pos", 0), ("b", 0, "same", "pos", 1)])
    assert filter_candidates(table, per_class=5, exact_dedup=False).distilled.num_rows == 2
    assert filter_candidates(table, per_class=5, exact_dedup=True).distilled.num_rows == 1
