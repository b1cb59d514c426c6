"""Budgets are kept: a pick a filter drops is refilled by the method's next-ranked row, a class
whose ranking runs out is recorded as short; the baselines meet the same filters and rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from distill_core.artifacts.schemas import SELECTION_SCHEMA
from distill_core.config import FilterSection
from distill_core.evaluate.baselines import (
    BaselineFilters,
    full_baseline,
    random_baseline,
    rows_short,
)
from distill_core.filter import FilterContext, filter_candidates
from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.synthesize.base import select_per_class

NO_EMBEDDINGS = {"contamination": {"embedding_threshold": None}}


def _ranking(rows: list[tuple[str, str, int]], replicate: int = 0) -> pa.Table:
    return pa.Table.from_pylist([
        {"example_id": f"{label}{rank}-{replicate}", "replicate": replicate, "text": text,
         "text_pair": None, "label": label, "label_id": 0 if label == "neg" else 1,
         "parent_ids": [], "method": "kmeans", "run_id": "r", "seed": replicate, "rank": rank,
         "score": 0.0, "weight": 1.0, "soft_label": None}
        for text, label, rank in rows], schema=SELECTION_SCHEMA)


def _context(table: pa.Table, eval_texts: list[str]) -> FilterContext:
    ids = dict.fromkeys(table.column("example_id").to_pylist())
    return FilterContext(ids={e: i for i, e in enumerate(ids)}, eval_texts=eval_texts)


def test_a_dropped_pick_is_refilled_by_the_next_ranked_row() -> None:
    table = _ranking([("a moving film", "pos", 0), ("the test sentence", "pos", 1),
                      ("a warm film", "pos", 2), ("a bright film", "pos", 3),
                      ("a dull film", "neg", 0), ("A  dull film", "neg", 1),
                      ("a flat film", "neg", 2), ("a cold film", "neg", 3)])
    cfg = FilterSection.model_validate(NO_EMBEDDINGS)
    result = filter_candidates(table, 2, cfg, _context(table, ["The test sentence"]))
    kept = [(r["label"], r["rank"]) for r in result.kept.to_pylist()]
    assert sorted(kept) == [("neg", 0), ("neg", 2), ("pos", 0), ("pos", 2)]
    reasons = {r["example_id"]: r["reason"] for r in result.rejects.to_pylist()}
    assert reasons == {"pos1-0": "contaminated_ngram", "pos3-0": "over_budget",
                       "neg1-0": "exact_duplicate", "neg3-0": "over_budget"}
    assert result.shortfall == {}
    assert result.counts["rows_in"] == result.counts["rows_out"] + result.counts["rows_rejected"]


def test_an_exhausted_ranking_is_recorded_per_replicate_and_class() -> None:
    table = pa.concat_tables([
        _ranking([("the test sentence", "pos", 0), ("a warm film", "pos", 1),
                  ("a dull film", "neg", 0), ("a flat film", "neg", 1)], replicate=0),
        _ranking([("a warm film", "pos", 0), ("a bright film", "pos", 1),
                  ("a dull film", "neg", 0), ("a flat film", "neg", 1)], replicate=1)])
    cfg = FilterSection.model_validate(NO_EMBEDDINGS)
    result = filter_candidates(table, 2, cfg, _context(table, ["the test sentence"]),
                               label_names=["neg", "pos", "neutral"])
    assert result.shortfall == {
        "0": {"pos": {"kept": 1, "budget": 2, "ranked": 2},
              "neutral": {"kept": 0, "budget": 2, "ranked": 0}},
        "1": {"neutral": {"kept": 0, "budget": 2, "ranked": 0}}}


@pytest.fixture(scope="module")
def sst2_train(slice_dir: Path) -> pa.Table:
    corpus = ingest_dataset(resolve_dataset("sst2"), slice_dir).corpus
    return corpus.filter(pa.compute.equal(corpus.column("split"), "train"))


def _filters(train: pa.Table, eval_texts: list[str], **section) -> BaselineFilters:
    ids = {e: i for i, e in enumerate(train.column("example_id").to_pylist())}
    return BaselineFilters(FilterSection.model_validate({**NO_EMBEDDINGS, **section}),
                           FilterContext(ids=ids, eval_texts=eval_texts), oversample=3)


def test_random_baseline_goes_through_the_filters_and_is_refilled(sst2_train) -> None:
    """Real SST-2 rows: plant the seed's first random picks as 'evaluation texts'."""
    train, y = sst2_train, sst2_train.column("label_id").to_numpy()
    x = np.zeros((train.num_rows, 1), np.float32)
    unfiltered = random_baseline(train, x, 2, 5, 7, None)
    plain = select_per_class("random", x, y, 5, 7)
    assert unfiltered.rows.tolist() == plain.indices.tolist() and unfiltered.short == 0
    texts = train.column("text").to_pylist()
    planted = [texts[i] for i in plain.indices[:3]]  # three of its picks now contaminated
    filters = _filters(train, planted)
    subset = random_baseline(train, x, 2, 5, 7, filters)
    assert np.bincount(y[subset.rows]).tolist() == [5, 5] and subset.short == 0
    chosen = {texts[i] for i in subset.rows}
    assert not chosen & set(planted)
    kept_picks = [int(i) for i in plain.indices if texts[i] not in planted]
    assert set(kept_picks) <= set(subset.rows.tolist())  # the others stay; 3 refills added
    ranked = select_per_class("random", x, y, 5, 7, oversample=3)
    assert set(subset.rows.tolist()) <= set(ranked.indices.tolist())  # from the permutation
    assert full_baseline(train, filters).rows.tolist() == [
        i for i, t in enumerate(texts) if t not in planted]
    assert len(full_baseline(train, None).rows) == train.num_rows


def test_random_baseline_reports_its_shortfall_when_the_pool_runs_out(sst2_train) -> None:
    train, y = sst2_train, sst2_train.column("label_id").to_numpy()
    x = np.zeros((train.num_rows, 1), np.float32)
    texts = train.column("text").to_pylist()
    negatives = [t for t, label in zip(texts, y, strict=True) if label == 0]
    filters = _filters(train, negatives[3:])  # only three negative rows stay usable
    filters = BaselineFilters(filters.section, filters.context, oversample=1000)
    subset = random_baseline(train, x, 2, 5, 0, filters)
    assert np.bincount(y[subset.rows], minlength=2).tolist() == [3, 5]
    assert subset.short == 2 == rows_short(y[subset.rows], 2, 5)
