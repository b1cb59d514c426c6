"""The corpus clean stage one batch at a time: the filters on every training row without
holding the corpus.

Quality, contamination and teacher consistency judge each row on its own; exact dedup
needs only the digests of the texts seen so far, and near dedup the rows kept so far (their
LSH band keys, and their MinHash signatures spilled to a scratch folder), which
`run_filters` carries from batch to batch. So walking the corpus, its embeddings (and the
teacher's p(label)) side by side in corpus order and filtering each batch keeps exactly the
rows, with the same reasons, that filtering the whole training split at once keeps, while
holding one batch of rows and vectors (plus about 32 bytes a distinct text, `SeenTexts`, and
8 bytes per LSH band a row near dedup kept, `NearSeen`). Semantic dedup, which runs last,
compares rows across the corpus: the batches' surviving rows are spilled to the scratch
folder (`SemanticSpill`) and clustered and compared from there, then a second pass over the
corpus's rows writes the rows it kept, and rejects the rest with the row that each
duplicates."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.schemas import rejects_table
from distill_core.artifacts.stage_writer import StageWriter
from distill_core.artifacts.store import RunStore
from distill_core.config import FilterSection
from distill_core.errors import ArtifactError
from distill_core.filter.base import Drop, FilterInput
from distill_core.filter.exact import SeenTexts
from distill_core.filter.near_seen import NearSeen
from distill_core.filter.pipeline import run_filters
from distill_core.filter.semantic_spill import SemanticSpill
from distill_core.filter.stage import reject_rows
from distill_core.pipeline.batches import (
    BATCH_ROWS,
    RowStream,
    aligned_batches,
    rows_at,
    stage_batches,
    with_starts,
)
from distill_core.pipeline.filter_context import StreamedFilterContext, normalised
from distill_core.pipeline.inputs import signal_columns
from distill_core.signals.embeddings import features, matrix

INPUT_COLUMNS = ["example_id", "text", "text_pair", "label", "label_id"]
ROWS_PER_BATCH = BATCH_ROWS  # corpus rows (and their vectors) held at a time


def near_state(cfg: FilterSection, scratch: Path) -> NearSeen | None:
    """Near dedup's memory across batches (kept rows' signatures spilled under `scratch`),
    when it is on."""
    n = cfg.near_dedup
    return (NearSeen(n.shingle, n.num_perm, n.threshold, n.seed, scratch) if n.enabled
            else None)


class FilterTally:
    """Each filter's rows in / out / rejected (by reason), summed over batches."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.sums: dict[str, dict[str, Any]] = {}

    def add(self, per_filter: list[dict[str, Any]]) -> None:
        for entry in per_filter:
            name = entry["filter"]
            if name not in self.sums:
                self.order.append(name)
                self.sums[name] = {"rows_in": 0, "rows_out": 0, "rows_rejected": 0,
                                   "rejects_by_reason": Counter()}
            total = self.sums[name]
            for key in ("rows_in", "rows_out", "rows_rejected"):
                total[key] += entry[key]
            total["rejects_by_reason"].update(entry["rejects_by_reason"])

    def per_filter(self) -> list[dict[str, Any]]:
        return [{"filter": name, **{k: v for k, v in self.sums[name].items()
                                    if k != "rejects_by_reason"},
                 "rejects_by_reason": dict(self.sums[name]["rejects_by_reason"])}
                for name in self.order]


def clean_streamed(context: StreamedFilterContext, cfg: FilterSection, writer: StageWriter
                   ) -> tuple[Counts, list[dict[str, Any]]]:
    """Filter the training rows batch by batch in corpus order, writing the kept rows and the
    rejects through `writer`; the counts and each filter's tally."""
    store = context.store
    spill = store.scratch("clean-spill")
    near = near_state(cfg, spill / "near")
    s = cfg.semantic_dedup
    semantic = (SemanticSpill(spill / "semantic", s.epsilon, s.cluster_size, s.seed)
                if s.enabled else None)
    try:
        counts, tally = _clean_batches(context, cfg, writer, near, semantic)
        if semantic is not None:
            counts = _semantic_pass(store, semantic, writer, counts, tally)
        if not counts.rejects_by_reason:  # an empty rejects table, as a stage that rejected
            writer.write(rejects_table([]), rejects=True)  # nothing writes
        return counts, tally.per_filter()
    finally:
        if near is not None:
            near.close()
        if semantic is not None:
            semantic.close()
        shutil.rmtree(spill, ignore_errors=True)


def _clean_batches(context: StreamedFilterContext, cfg: FilterSection, writer: StageWriter,
                   near: NearSeen | None, semantic: SemanticSpill | None
                   ) -> tuple[Counts, FilterTally]:
    """Every filter but semantic dedup on each batch, writing its rejects; the kept rows are
    written too, or, with semantic dedup on, spilled to it (written by `_semantic_pass`)."""
    store = context.store
    eval_texts, eval_vectors = context.eval_texts, context.eval_vectors
    teacher = RowStream(store, "teacher", ["soft_label"]) if context.with_teacher else None
    batch_cfg = (cfg if semantic is None else cfg.model_copy(update={
        "semantic_dedup": cfg.semantic_dedup.model_copy(update={"enabled": False})}))
    seen = SeenTexts()
    tally = FilterTally()
    rows_in = rows_out = 0
    reasons: Counter[str] = Counter()
    for start, rows, embedded in aligned_batches(store, ("ingest", None),
                                                 ("signals", signal_columns(store)),
                                                 ROWS_PER_BATCH):
        if not rows.column("example_id").equals(embedded.column("example_id")):
            raise RuntimeError("embeddings are not aligned with the corpus (different run "
                               "inputs?)")
        soft = teacher.take(rows.num_rows) if teacher is not None else None
        if soft is not None and soft.num_rows != rows.num_rows:
            raise ArtifactError("the teacher stage has fewer rows than the corpus; rerun the "
                                "command to recompute the stages")
        train = np.asarray(pc.equal(rows.column("split"), "train").to_numpy(
            zero_copy_only=False), dtype=bool)
        if not train.any():
            continue
        picked = np.flatnonzero(train)
        batch = rows.take(pa.array(picked))
        label_prob = None
        if soft is not None:
            labels = batch.column("label_id").to_numpy()
            label_prob = matrix(soft.take(pa.array(picked)), "soft_label")[
                np.arange(len(labels)), labels]
        data = FilterInput(batch.select(INPUT_COLUMNS), np.zeros(batch.num_rows, np.int64),
                           normalised(features(embedded.take(pa.array(picked)))), label_prob,
                           eval_texts, eval_vectors)
        run = run_filters(data, batch_cfg, seen, near)
        tally.add(run.per_filter)
        rejects = reject_rows(batch, run.drops, None)
        if semantic is None:
            writer.write(batch.take(pa.array(run.kept, pa.int64())))
        else:
            semantic.add(start + picked[run.kept], data.vectors[run.kept])
        if rejects:
            writer.write(rejects_table(rejects), rejects=True)
        rows_in += batch.num_rows
        rows_out += len(run.kept)
        reasons.update(r["reason"] for r in rejects)
    if teacher is not None and not teacher.exhausted():
        raise ArtifactError("the teacher stage has more rows than the corpus; rerun the "
                            "command to recompute the stages")
    return Counts(rows_in, rows_out, dict(reasons)), tally


def _semantic_pass(store: RunStore, semantic: SemanticSpill, writer: StageWriter,
                   counts: Counts, tally: FilterTally) -> Counts:
    """Semantic dedup over the rows the other filters kept (spilled), then one pass over the
    corpus's rows writing the rows it keeps and rejecting its duplicates, each naming the
    row it duplicates; the stage's counts with its drops."""
    found = semantic.drops()
    survivors = semantic.positions
    tally.add([{"filter": "semantic_dedup", "rows_in": len(survivors),
                "rows_out": len(survivors) - len(found.dropped),
                "rows_rejected": len(found.dropped),
                "rejects_by_reason": ({"semantic_duplicate": len(found.dropped)}
                                      if len(found.dropped) else {})}])
    named = np.unique(found.kept)
    kept_ids = rows_at(store, "ingest", named, ["example_id"])[0].column(
        "example_id").to_pylist()
    by_row = np.argsort(found.dropped, kind="stable")
    dropped = found.dropped[by_row]
    details = [f"cosine {found.cosine[i]:.3f} with "
               f"{kept_ids[int(np.searchsorted(named, found.kept[i]))]}" for i in by_row]
    for start, rows in with_starts(stage_batches(store, "ingest", None, ROWS_PER_BATCH)):
        lo, hi = np.searchsorted(survivors, [start, start + rows.num_rows])
        d_lo, d_hi = np.searchsorted(dropped, [start, start + rows.num_rows])
        here = survivors[lo:hi]
        duplicate = np.isin(here, dropped[d_lo:d_hi])
        writer.write(rows.take(pa.array(here[~duplicate] - start)))
        if d_hi > d_lo:
            table = rows.take(pa.array(dropped[d_lo:d_hi] - start))
            writer.write(rejects_table(reject_rows(
                table, [Drop(i, "semantic_duplicate", details[d_lo + i])
                        for i in range(d_hi - d_lo)], None)), rejects=True)
    reasons = Counter(counts.rejects_by_reason)
    if len(dropped):
        reasons["semantic_duplicate"] += len(dropped)
    return Counts(counts.rows_in, counts.rows_out - len(dropped), dict(reasons))
