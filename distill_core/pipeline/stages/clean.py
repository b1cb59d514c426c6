"""clean: the configured filters on the training corpus before selection (`filter.corpus`).

Batch by batch in corpus order (`clean_stream`: one batch of rows and vectors held, whatever
the corpus's size; exact and near dedup carry what they kept from batch to batch, semantic
dedup spills the rows that reach it to a scratch folder and compares them from there)."""

from __future__ import annotations

from distill_core.config import RunConfig
from distill_core.pipeline.clean_stream import clean_streamed
from distill_core.pipeline.filter_context import StreamedFilterContext
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.pipeline.stages.teacher import needs_teacher


def _reads(cfg: RunConfig) -> tuple[str, ...]:
    return ("ingest", "signals") + (("teacher",) if needs_teacher(cfg) else ())


def _body(ctx: StageContext) -> StageOutput:
    if ctx.writer is None:
        raise RuntimeError("clean writes through the runner's StageWriter (ctx.writer)")
    context = StreamedFilterContext(ctx.store, needs_teacher(ctx.cfg))
    counts, per_filter = clean_streamed(context, ctx.cfg.filter, ctx.writer)
    ctx.report(1, 1, f"{counts.rows_out} rows")
    return StageOutput(None, counts, extra={"filters": per_filter, "streamed": True},
                       seeds=ctx.cfg.run.seeds)


CLEAN = Stage(
    name="clean", version=2,
    writes="the training rows that pass the filters (+ rejects with reason and evidence)",
    reads=_reads, settings=lambda cfg: cfg.filter.model_dump(mode="json"), body=_body,
    enabled=lambda cfg: cfg.filter.corpus)
