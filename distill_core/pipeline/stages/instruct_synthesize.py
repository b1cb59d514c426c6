"""synthesize and filter, instruction data: the ranked pool per seed, then filters and budget.

synthesize: every method ranks the training pool (`methods/instruction.py`) to the
budget x `oversample` rows; candidates carry the corpus's columns (prompt in
`text`, response in `text_pair`), `parent_ids` (the row itself), method, run id,
seed, rank and score; the rows a seed did not rank are counted as `not_selected`
(derived by the audit, as for a classification selection). filter: the run's
filters (exact, MinHash and semantic dedup, contamination against the
evaluation split) on prompt + response, then the budget (one class) refilled
from each seed's reserve; the classification stages' report sections apply.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from distill_core.artifacts.counts import Counts
from distill_core.config import RunConfig
from distill_core.filter.stage import filter_candidates
from distill_core.methods import get_method
from distill_core.methods.instruction import INSTRUCTION
from distill_core.pipeline.filter_context import filter_context
from distill_core.pipeline.inputs import label_names
from distill_core.pipeline.stage import StageContext, StageOutput
from distill_core.pipeline.stages.filter import FILTER
from distill_core.pipeline.stages.instruct_reference import scores_the_pool
from distill_core.pipeline.stages.synthesize import SYNTHESIZE


def _synthesize_settings(cfg: RunConfig) -> dict[str, Any]:
    s = cfg.synthesize
    return {"method": s.method, "budget": s.budget, "oversample": s.oversample,
            "options": s.options().model_dump(mode="json"), "seeds": cfg.run.seeds,
            **({"synth": cfg.instruct.synth.model_dump(mode="json"),
                "max_similarity": cfg.generate.max_similarity}
               if get_method(s.method).generative else {}),
            "run_id": cfg.run_id()}


def _synthesize_reads(cfg: RunConfig) -> tuple[str, ...]:
    return ("ingest", "signals") + (("teacher",) if scores_the_pool(cfg) else ()) + (
        ("generate",) if get_method(cfg.synthesize.method).generative else ())


def _synthesize(ctx: StageContext) -> StageOutput:
    cfg = ctx.cfg
    method = get_method(cfg.synthesize.method)
    result, notes = INSTRUCTION.synthesize(ctx, method)
    return StageOutput(result.candidates, Counts.from_dict(result.counts), seeds=cfg.run.seeds,
                       rejects=result.rejects if method.generative else None,
                       extra={"label_names": label_names(ctx.store),
                              "backend": "in process", **notes})


def _filter_settings(cfg: RunConfig) -> dict[str, Any]:
    return {**cfg.filter.model_dump(mode="json"), "budget": cfg.synthesize.budget}


def _filter(ctx: StageContext) -> StageOutput:
    cfg, store = ctx.cfg, ctx.store
    budget = int((store.manifest("synthesize") or {})["budget_rows"])
    result = filter_candidates(store.read("synthesize"), budget, cfg.filter,
                               filter_context(store, False), label_names(store))
    ctx.report(1, 1, f"{result.kept.num_rows} rows")
    return StageOutput(result.kept, Counts.from_dict(result.counts), rejects=result.rejects,
                       extra={"filters": result.per_filter, "rows_per_class": result.per_class,
                              "shortfall": result.shortfall, "budget_rows": budget},
                       seeds=cfg.run.seeds)


INSTRUCTION_SYNTHESIZE = replace(
    SYNTHESIZE, version=1, settings=_synthesize_settings, body=_synthesize, report=None,
    reads=_synthesize_reads,
    writes="ranked pool rows per seed (budget x oversample: the budget, then the reserve): "
           "text (prompt), text_pair (response), parent_ids, method, run_id, seed, rank, score")
INSTRUCTION_FILTER = replace(
    FILTER, version=1, settings=_filter_settings, body=_filter,
    reads=lambda cfg: ("synthesize", "ingest", "signals"),
    writes="the distilled sets, one per seed, refilled to the budget from the ranked reserve "
           "(+ rejects: duplicates, contamination, over_budget)")
