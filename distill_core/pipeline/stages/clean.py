"""clean: the configured filters on the training corpus before selection (`filter.corpus`).

Batch by batch in corpus order when every enabled filter allows it (`clean_stream`: one
batch of rows and vectors held, whatever the corpus's size; exact and near dedup carry what
they kept from batch to batch); with semantic dedup on, which compares rows across the
corpus, the whole training split at once."""

from __future__ import annotations

import pyarrow.compute as pc

from distill_core.artifacts.counts import Counts
from distill_core.config import RunConfig
from distill_core.filter.stage import clean_corpus
from distill_core.pipeline.clean_stream import clean_streamed, streams
from distill_core.pipeline.filter_context import StreamedFilterContext
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.pipeline.stages.teacher import needs_teacher


def _reads(cfg: RunConfig) -> tuple[str, ...]:
    return ("ingest", "signals") + (("teacher",) if needs_teacher(cfg) else ())


def _body(ctx: StageContext) -> StageOutput:
    context = StreamedFilterContext(ctx.store, needs_teacher(ctx.cfg))
    if streams(ctx.cfg.filter) and ctx.writer is not None:
        counts, per_filter = clean_streamed(context, ctx.cfg.filter, ctx.writer)
        ctx.report(1, 1, f"{counts.rows_out} rows")
        return StageOutput(None, counts, extra={"filters": per_filter, "streamed": True},
                           seeds=ctx.cfg.run.seeds)
    corpus = ctx.store.read("ingest")
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    result = clean_corpus(train, ctx.cfg.filter, context)
    ctx.report(1, 1, f"{result.kept.num_rows} rows")
    return StageOutput(result.kept, Counts.from_dict(result.counts), rejects=result.rejects,
                       extra={"filters": result.per_filter, "streamed": False},
                       seeds=ctx.cfg.run.seeds)


CLEAN = Stage(
    name="clean", version=1,
    writes="the training rows that pass the filters (+ rejects with reason and evidence)",
    reads=_reads, settings=lambda cfg: cfg.filter.model_dump(mode="json"), body=_body,
    enabled=lambda cfg: cfg.filter.corpus)
