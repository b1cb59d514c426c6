"""evaluate: fresh learners on each distilled set, next to random subsets and the full split,
the baselines through the same filters (and refill rule) as the distilled sets."""

from __future__ import annotations

from typing import Any

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.evaluate.baselines import BaselineFilters
from distill_core.evaluate.data import EvaluationData
from distill_core.evaluate.stage import (
    EvaluationPlan,
    count_fits,
    evaluate_selection,
    summarize_scores,
)
from distill_core.learners.spec import as_spec
from distill_core.markdown import SCORE_HEADER, markdown_table, score_learners, score_rows
from distill_core.methods.learned_protocol import evaluation_steps
from distill_core.pipeline.filter_context import filter_context
from distill_core.pipeline.inputs import kept_train_rows
from distill_core.pipeline.stage import Stage, StageContext, StageOutput


def _reads(cfg: RunConfig) -> tuple[str, ...]:
    reads = ("ingest", "signals", "filter")
    reads += ("teacher",) if cfg.filter.teacher_consistency.enabled else ()
    return reads + (("clean",) if cfg.filter.corpus else ())


def _settings(cfg: RunConfig) -> dict[str, Any]:
    settings = {**cfg.evaluate.model_dump(mode="json"), "seeds": cfg.run.seeds,
                "per_class": cfg.synthesize.per_class, "method": cfg.synthesize.method,
                "temperature": cfg.teacher.temperature,
                "baseline_filters": cfg.filter.model_dump(mode="json"),
                "oversample": cfg.synthesize.oversample}
    if cfg.synthesize.method == "learned_trajectory" and any(
            spec.kind == "embeds_finetune" for spec in map(as_spec, cfg.evaluate.learners)):
        # embeds_finetune replays trajectory matching's steps (`methods/learned_protocol.py`):
        # scores made with the one step of earlier versions are not reused
        settings["embeds_finetune_steps"] = evaluation_steps(
            "trajectory_matching", cfg.synthesize.options().model_dump())
    return settings


def baseline_filters(cfg: RunConfig, store: RunStore) -> BaselineFilters:
    """The run's filters, context and refill rule, for the baselines; with `filter.corpus`,
    the random baseline draws from the cleaned rows as the methods do."""
    pool = kept_train_rows(store) if cfg.filter.corpus else None
    return BaselineFilters(cfg.filter, filter_context(store, cfg.filter.teacher_consistency
                                                      .enabled),
                           cfg.synthesize.oversample, pool)


def _body(ctx: StageContext) -> StageOutput:
    cfg = ctx.cfg
    # `full` fits on every training row: the whole split in memory; otherwise only the rows
    # each fit names are read (`StreamedFeaturePool`)
    read = (EvaluationData.from_store if "full" in cfg.evaluate.baselines
            else EvaluationData.streamed_from_store)
    data = read(ctx.store, baseline_filters(cfg, ctx.store))
    plan = EvaluationPlan.from_config(cfg)
    total, fits = count_fits(data, plan), {"n": 0}

    def tick(note: str) -> None:
        fits["n"] += 1
        ctx.report(fits["n"], total, note)

    scores = evaluate_selection(data, plan, tick)
    return StageOutput(scores, Counts.one_to_one(scores.num_rows,
                                                 eval_rows=int(data.evaluation.y.size)),
                       seeds=cfg.run.seeds, extra={"summary": summarize_scores(scores)})


def shared_set_size(example_ids: list[str], replicates: list[int]) -> int | None:
    """The set's size when every replicate (at least two) holds exactly the same rows."""
    sets: dict[int, set[str]] = {}
    for example, replicate in zip(example_ids, replicates, strict=True):
        sets.setdefault(replicate, set()).add(example)
    first = next(iter(sets.values()), None)
    if len(sets) < 2 or any(s != first for s in sets.values()):
        return None
    return len(first)


def identical_sets_note(store: RunStore) -> str:
    """A sentence when every seed distilled the very same rows (herding, a deterministic
    choice of `auto`...): then the ± of the distilled row is the learner's seed alone."""
    if store.manifest("filter") is None:
        return ""
    rows = store.read("filter", columns=["example_id", "replicate"])
    replicates = rows.column("replicate").to_pylist()
    size = shared_set_size(rows.column("example_id").to_pylist(), replicates)
    if size is None:
        return ""
    return (f" The {len(set(replicates))} seeds distilled the same {size} rows (the method is "
            "deterministic on this corpus), so the distilled row's ± is the learner's seed "
            "alone, not a spread over different sets.")


def _report(store: RunStore) -> list[str]:
    evaluate = store.manifest("evaluate")
    if evaluate is None:
        return []
    learners = ", ".join(score_learners(evaluate["summary"]))
    return [f"## Scores ({learners} on the evaluation split, %)", "",
            markdown_table(SCORE_HEADER, score_rows(evaluate["summary"])),
            "", f"Evaluation rows: {evaluate['counts'].get('eval_rows')}. "
            "Mean ± sample std over seeds; `full` is one deterministic fit on the training "
            "split after the contamination filter. `short`: rows a set is below its budget "
            "after the filters and the refill from the method's ranking (the baselines go "
            "through the same filters)." + identical_sets_note(store)]


EVALUATE = Stage(
    name="evaluate", version=4,
    writes="scores: one row per fit (learner, setting, seed, accuracy, macro-F1) for the "
           "distilled sets, random subsets and the full split",
    reads=_reads, settings=_settings, body=_body,
    funnel=False, report=_report)
