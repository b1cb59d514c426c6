"""synthesize: one candidate set per seed, made by the configured method."""

from __future__ import annotations

from typing import Any

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.methods import get_method
from distill_core.pipeline.executor import Resources
from distill_core.pipeline.inputs import label_names
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.pipeline.stages.teacher import synthesis_reads_teacher
from distill_core.synthesize.auto_cv import report_lines
from distill_core.synthesize.centering import run_centres_features


def _reads(cfg: RunConfig) -> tuple[str, ...]:
    reads = ("ingest", "signals") + (("teacher",) if synthesis_reads_teacher(cfg) else ())
    reads += ("clean",) if cfg.filter.corpus else ()
    method = get_method(cfg.synthesize.method)
    return reads + (("generate",) if method.generative else ()) + (
        ("learn",) if method.learned else ())


def _settings(cfg: RunConfig) -> dict[str, Any]:
    s = cfg.synthesize
    return _auto_settings(cfg) | {
        "method": s.method, "per_class": s.per_class, "oversample": s.oversample,
        "soft_labels": s.soft_labels, "center_features": _centering(cfg),
        "options": s.options().model_dump(mode="json"), "seeds": cfg.run.seeds,
        "run_id": cfg.run_id(),
        "temperature": cfg.teacher.temperature if synthesis_reads_teacher(cfg) else None}


def _centering(cfg: RunConfig) -> bool | None:
    """Whether the selection family centres its features (None: the method is no selection,
    and reads none)."""
    if get_method(cfg.synthesize.method).family != "selection":
        return None
    return run_centres_features(cfg)


def _auto_settings(cfg: RunConfig) -> dict[str, Any]:
    """What else `auto`'s choice depends on: the options of the recipes it runs, its probe
    teacher's settings and the probe it cross-validates with."""
    method = get_method(cfg.synthesize.method)
    if method.family != "auto":
        return {}
    from distill_core.synthesize.auto_cv import probe_spec

    probe = probe_spec(cfg)
    return {"auto_inputs": {
        "options": {m: getattr(cfg.synthesize, m).model_dump(mode="json")
                    for m in cfg.runs_with()},  # hashed with sorted keys: order is moot
        "teacher": {"C": cfg.teacher.C, "max_iter": cfg.teacher.max_iter},
        "probe": {"C": probe.C, "max_iter": probe.max_iter}}}


def _body(ctx: StageContext) -> StageOutput:
    cfg = ctx.cfg
    method = get_method(cfg.synthesize.method)
    ctx.report(0, len(cfg.run.seeds), method.name)
    result, notes = method.implementation().synthesize(ctx, method)
    ctx.report(len(cfg.run.seeds), len(cfg.run.seeds), "done")
    # A selection's "not selected" rows are implicit (counted, derived by the audit): no
    # rejects part is written unless some row was rejected explicitly.
    return StageOutput(result.candidates, Counts.from_dict(result.counts),
                       rejects=result.rejects if result.rejects.num_rows else None,
                       seeds=cfg.run.seeds, extra={
                           "class_shortfall": {str(k): v for k, v in result.shortfall.items()},
                           "label_names": label_names(ctx.store),
                           "backend": ctx.executor.name, **notes})


def _report(store: RunStore) -> list[str]:
    manifest = store.manifest("synthesize") or {}
    shortfall = manifest.get("class_shortfall")
    lines = (["Classes smaller than the budget (all rows kept): " f"`{shortfall}`"]
             if shortfall else [])
    weights = manifest.get("learned_weights")
    if weights:
        spread = "; ".join(f"replicate {r}: {low:.2f}-{high:.2f}"
                           for r, (low, high) in weights["min_max_by_replicate"].items())
        lines += [f"Learned per-example weights on the picks (each class's mean 1, fitted "
                  f"for the linear probe at C = {weights['c']} to {weights['demand_rows']} "
                  f"pool rows; the reserve weighs 1): {spread}.", ""]
    labels = manifest.get("learned_labels")
    if labels:
        each = "; ".join(f"replicate {r}: {v['mean_own_probability']:.2f}"
                         + (f", {v['rows_led_by_another_class']} led by another class"
                            if v["rows_led_by_another_class"] else "")
                         for r, v in labels["by_replicate"].items())
        lines += [f"Learned soft labels on the picks (solved for the soft-label probe at "
                  f"C = {labels['c']}, temperature {labels['temperature']}, to make the probe "
                  f"fitted on {labels['target_rows']} pool rows in the picks' span; scored as "
                  f"`+soft`; the reserve's labels are one-hot). Mean probability of each "
                  f"pick's own class: {each}.", ""]
    return lines + (report_lines(manifest["auto"]) if manifest.get("auto") else [])


SYNTHESIZE = Stage(
    name="synthesize", version=6,
    writes="ranked candidates per seed (per_class x oversample per class: the budget, then the "
           "reserve): parent_ids, method, run_id, seed, rank, score, weight, soft_label "
           "(+ rejects: the generative choice's reasons; a selection's not_selected rows are "
           "counted per replicate and derived by the audit, not written)",
    reads=_reads, settings=_settings, body=_body,
    resources=lambda compute: Resources(cpus=compute.cpus_per_actor), retries=2,
    report=_report)
