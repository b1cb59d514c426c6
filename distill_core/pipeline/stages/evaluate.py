"""evaluate: fresh learners on each distilled set, next to random subsets and the full split."""

from __future__ import annotations

from typing import Any

from distill_core.artifacts.counts import Counts
from distill_core.config import RunConfig
from distill_core.evaluate.stage import evaluate_selection, summarize_scores
from distill_core.generate.features import generated_features
from distill_core.pipeline.inputs import label_names
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.signals.embeddings import split_features


def _settings(cfg: RunConfig) -> dict[str, Any]:
    return {**cfg.evaluate.model_dump(mode="json"), "seeds": cfg.run.seeds,
            "per_class": cfg.synthesize.per_class, "method": cfg.synthesize.method,
            "temperature": cfg.teacher.temperature}


def _body(ctx: StageContext) -> StageOutput:
    cfg, store = ctx.cfg, ctx.store
    corpus, embeddings = store.read("ingest"), store.read("signals")
    train, train_x = split_features(corpus, embeddings, "train")
    evaluation, eval_x = split_features(corpus, embeddings, "eval")
    if evaluation.num_rows == 0:
        raise RuntimeError("the evaluation split has no usable rows (see ingest rejects)")
    total = len(cfg.run.seeds) * (1 + cfg.synthesize.soft_labels
                                  + ("random" in cfg.evaluate.baselines)) + (
        "full" in cfg.evaluate.baselines)
    fits = {"n": 0}

    def tick(note: str) -> None:
        fits["n"] += 1
        ctx.report(fits["n"], total, note)

    scores = evaluate_selection(
        train, train_x, evaluation.column("label_id").to_numpy(), eval_x, store.read("filter"),
        cfg.synthesize.method, cfg.synthesize.per_class, cfg.run.seeds, len(label_names(store)),
        cfg.evaluate.baselines, cfg.evaluate.C, cfg.evaluate.max_iter, tick,
        temperature=cfg.teacher.temperature, generated=generated_features(store))
    return StageOutput(scores, Counts.one_to_one(scores.num_rows, eval_rows=evaluation.num_rows),
                       seeds=cfg.run.seeds, extra={"summary": summarize_scores(scores)})


EVALUATE = Stage(
    name="evaluate", version=2,
    writes="scores: one row per fit (learner, setting, seed, accuracy, macro-F1) for the "
           "distilled sets, random subsets and the full split",
    reads=lambda cfg: ("ingest", "signals", "filter"), settings=_settings, body=_body,
    funnel=False)
