"""clean: the configured filters on the training corpus before selection (`filter.corpus`)."""

from __future__ import annotations

import pyarrow.compute as pc

from distill_core.artifacts.counts import Counts
from distill_core.config import RunConfig
from distill_core.filter.stage import clean_corpus
from distill_core.pipeline.filter_context import filter_context
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.pipeline.stages.teacher import needs_teacher


def _reads(cfg: RunConfig) -> tuple[str, ...]:
    return ("ingest", "signals") + (("teacher",) if needs_teacher(cfg) else ())


def _body(ctx: StageContext) -> StageOutput:
    corpus = ctx.store.read("ingest")
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    result = clean_corpus(train, ctx.cfg.filter, filter_context(ctx.store,
                                                                needs_teacher(ctx.cfg)))
    ctx.report(1, 1, f"{result.kept.num_rows} rows")
    return StageOutput(result.kept, Counts.from_dict(result.counts), rejects=result.rejects,
                       extra={"filters": result.per_filter}, seeds=ctx.cfg.run.seeds)


CLEAN = Stage(
    name="clean", version=1,
    writes="the training rows that pass the filters (+ rejects with reason and evidence)",
    reads=_reads, settings=lambda cfg: cfg.filter.model_dump(mode="json"), body=_body,
    enabled=lambda cfg: cfg.filter.corpus)
