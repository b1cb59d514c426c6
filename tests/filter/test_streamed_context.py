"""The filters' context read on demand (`StreamedFilterContext`) gives the filters exactly what
the in-memory context over every row gave: same vectors, teacher p(label) and eval split, so
the same distilled rows and rejects, on a real SST-2 run with contamination and teacher
consistency on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from distill_core.config import load_config
from distill_core.filter.base import joined_texts
from distill_core.filter.stage import FilterContext, filter_candidates
from distill_core.pipeline.filter_context import StreamedFilterContext
from distill_core.pipeline.inputs import label_names
from distill_core.signals.embeddings import features, matrix


def _in_memory_context(store) -> FilterContext:
    """The context as the filter stage built it before streaming: every row's features."""
    corpus, embeddings = store.read("ingest"), store.read("signals")
    x = features(embeddings)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    soft = matrix(store.read("teacher", columns=["soft_label"]), "soft_label")
    label_prob = soft[np.arange(len(soft)), corpus.column("label_id").to_numpy()]
    is_eval = np.asarray(corpus.column("split").to_pylist()) == "eval"
    ids = {e: i for i, e in enumerate(corpus.column("example_id").to_pylist()) if not is_eval[i]}
    return FilterContext(ids=ids, vectors=x, label_prob=label_prob,
                         eval_texts=joined_texts(corpus.filter(pa.array(is_eval))),
                         eval_vectors=x[is_eval])


@pytest.fixture(scope="module")
def selected(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory, run_stages):
    cfg = load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0,1]",
                             "run.name=streamed-context", "synthesize.per_class=4",
                             "filter.contamination.embedding_threshold=0.5",
                             "filter.teacher_consistency.enabled=true",
                             "filter.teacher_consistency.tau=0.6"])
    store, _ = run_stages(cfg, tmp_path_factory.mktemp("runs"), "synthesize")
    return cfg, store


def test_streamed_context_feeds_the_filters_the_same_rows(selected) -> None:
    cfg, store = selected
    candidates = store.read("synthesize")
    groups = candidates.column("replicate").to_numpy()
    old = _in_memory_context(store).input_for(candidates, groups)
    new = StreamedFilterContext(store, with_teacher=True).input_for(candidates, groups)
    assert np.array_equal(old.vectors, new.vectors)
    assert np.array_equal(old.label_prob, new.label_prob)
    assert old.eval_texts == new.eval_texts and len(old.eval_texts) > 0
    assert np.array_equal(old.eval_vectors, new.eval_vectors)


def test_filter_output_is_identical(selected) -> None:
    cfg, store = selected
    candidates = store.read("synthesize")
    before = filter_candidates(candidates, 4, cfg.filter, _in_memory_context(store),
                               label_names(store))
    after = filter_candidates(candidates, 4, cfg.filter, StreamedFilterContext(store, True),
                              label_names(store))
    reasons = set(before.rejects.column("reason").to_pylist())
    assert {"teacher_inconsistent"} & reasons and any(r.startswith("contaminated")
                                                     for r in reasons)
    assert after.kept.equals(before.kept)
    assert after.rejects.equals(before.rejects)
    assert after.per_filter == before.per_filter and after.shortfall == before.shortfall


def test_rows_the_evaluate_pool_read_feed_the_filters_the_same(selected, corpus_passes
                                                              ) -> None:
    """The evaluate stage's pool shares its reads (`share_reads`): the filters get the same
    vectors, teacher p(label) (by the rows' corpus positions) and eval split as from their own
    pass, and make no pass over the corpus for rows the pool has read."""
    from distill_core.evaluate.streamed import StreamedFeaturePool

    _, store = selected
    candidates = store.read("synthesize")
    groups = candidates.column("replicate").to_numpy()
    ids = candidates.column("example_id").to_pylist()
    own = StreamedFilterContext(store, with_teacher=True).input_for(candidates, groups)
    pool = StreamedFeaturePool(store)
    pool.prefetch(ids[len(ids) // 2:], "eval")  # two reads: the pool's rows are not in
    evaluation, eval_x = pool.prefetch(ids[:len(ids) // 2], "eval")  # corpus order
    assert not np.all(np.diff(pool._corpus_at) > 0)
    shared = StreamedFilterContext(store, with_teacher=True)
    shared.share_reads(evaluation, eval_x, pool.read_rows)
    passes = corpus_passes
    passes["n"] = 0  # the reads above were the pool's
    new = shared.input_for(candidates, groups)
    assert passes["n"] == 0
    rows, _, positions = pool.read_rows(ids)
    assert np.all(np.diff(positions) > 0)  # corpus order, as the teacher's reader needs
    assert sorted(rows.column("example_id").to_pylist()) == sorted(set(ids))
    assert np.array_equal(own.vectors, new.vectors)
    assert np.array_equal(own.label_prob, new.label_prob)
    assert own.eval_texts == new.eval_texts and len(own.eval_texts) > 0
    assert np.array_equal(own.eval_vectors, new.eval_vectors)
    # a row the pool has not read: the filters read the corpus for it, as before
    unread = candidates.slice(0, 1)
    assert pool.read_rows(["not-an-id"]) is None
    shared.share_reads(evaluation, eval_x, lambda wanted: None)
    assert np.array_equal(shared.input_for(unread, groups[:1]).vectors, own.vectors[:1])
    assert passes["n"] == 1
