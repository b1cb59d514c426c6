"""filter: each replicate's candidates through the filters, then the per-class budget."""

from __future__ import annotations

from typing import Any

from distill_core.artifacts.counts import Counts
from distill_core.config import RunConfig
from distill_core.filter.stage import filter_candidates
from distill_core.pipeline.inputs import filter_context
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.pipeline.stages.teacher import needs_teacher


def _reads(cfg: RunConfig) -> tuple[str, ...]:
    return ("synthesize", "ingest", "signals") + (("teacher",) if needs_teacher(cfg) else ())


def _settings(cfg: RunConfig) -> dict[str, Any]:
    return {**cfg.filter.model_dump(mode="json"), "per_class": cfg.synthesize.per_class}


def _body(ctx: StageContext) -> StageOutput:
    cfg, store = ctx.cfg, ctx.store
    result = filter_candidates(store.read("synthesize"), cfg.synthesize.per_class, cfg.filter,
                               filter_context(store, needs_teacher(cfg)))
    ctx.report(1, 1, f"{result.kept.num_rows} rows")
    return StageOutput(result.kept, Counts.from_dict(result.counts), rejects=result.rejects,
                       extra={"filters": result.per_filter, "rows_per_class": result.per_class},
                       seeds=cfg.run.seeds)


FILTER = Stage(
    name="filter", version=2,
    writes="the distilled sets, one per replicate (+ rejects: duplicates, contamination, "
           "teacher_inconsistent, over_budget)",
    reads=_reads, settings=_settings, body=_body)
