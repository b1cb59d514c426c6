"""evaluate, instruction data: `sft_lora` on each distilled set, random subsets and the full pool.

The fits and their scores come from `evaluate/instruction.py`; the manifest keeps
the per-setting summary (`instruction_summary`) that the report's table and its
held-out loss figure read.
"""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.store import RunStore
from distill_core.config import ComputeSection, RunConfig
from distill_core.evaluate.instruction import (
    Fit,
    baseline_sets,
    eval_sample,
    rows_of_table,
    score_fits,
    summarize,
)
from distill_core.generate.models import causal_lm_identity
from distill_core.instruct.device import set_torch_threads
from distill_core.markdown import markdown_table
from distill_core.pipeline.executor import Resources
from distill_core.pipeline.filter_context import filter_context
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.pipeline.stages.evaluate import EVALUATE


def _settings(cfg: RunConfig) -> dict[str, Any]:
    i = cfg.instruct
    return {"sft": i.sft.model_dump(mode="json"), "model": causal_lm_identity(i.sft.model),
            "eval_rows": i.eval_rows, "eval_seed": i.eval_seed,
            "baselines": cfg.evaluate.baselines, "seeds": cfg.run.seeds,
            "method": cfg.synthesize.method, "budget": cfg.synthesize.budget,
            "oversample": cfg.synthesize.oversample,
            "baseline_filters": cfg.filter.model_dump(mode="json")}


def _body(ctx: StageContext) -> StageOutput:
    cfg, store = ctx.cfg, ctx.store
    set_torch_threads(cfg.compute.torch_threads)
    corpus = store.read("ingest")
    held_out = eval_sample(corpus, cfg.instruct.eval_rows, cfg.instruct.eval_seed)
    budget = int((store.manifest("filter") or {})["budget_rows"])
    distilled = store.read("filter")
    fits = [Fit("distilled", seed, replicate,
                rows_of_table(distilled.filter(pc.equal(distilled.column("replicate"),
                                                        replicate))), budget)
            for replicate, seed in enumerate(cfg.run.seeds)]
    pool = corpus.filter(pc.equal(corpus.column("split"), "train"))
    fits += baseline_sets(cfg, pool, budget, filter_context(store, False), store.run_id)
    done = {"n": 0}

    def tick(note: str) -> None:
        done["n"] += 1
        ctx.report(done["n"], len(fits), note)

    scores = score_fits(cfg, fits, held_out, tick, ctx.executor, ctx.resources)
    return StageOutput(scores, Counts.one_to_one(scores.num_rows, eval_rows=len(held_out)),
                       seeds=cfg.run.seeds,
                       extra={"instruction_summary": summarize(scores),
                              "learner": "sft_lora", "model": cfg.instruct.sft.model,
                              "backend": ctx.executor.name,
                              "workers": sorted(set(scores.column("worker").to_pylist())),
                              "eval_rows": len(held_out),
                              "eval_rows_total": int(pc.sum(pc.equal(
                                  corpus.column("split"), "eval")).as_py())})


def _mean_std(entry: dict[str, Any], name: str, digits: int = 4) -> str:
    score = entry.get(name)
    if score is None:
        return "-"
    return f"{score['mean']:.{digits}f} ± {score['std']:.{digits}f}"


SCORE_HEADER = ["setting", "method", "fits", "rows", "held-out loss / token", "perplexity",
                "exact match", "short"]


def score_rows(summary: list[dict[str, Any]]) -> list[list[str]]:
    """The scores table's rows (report and CLI): one per setting."""
    return [[e["setting"], e["method"], str(e["fits"]), "/".join(map(str, e["rows"])),
             _mean_std(e, "eval_loss"), _mean_std(e, "perplexity", 2),
             _mean_std(e, "exact_match", 3), str(e["short"])] for e in summary]


def _report(store: RunStore) -> list[str]:
    evaluate = store.manifest("evaluate")
    if evaluate is None or "instruction_summary" not in evaluate:
        return []
    return [f"## Scores (`sft_lora`, {evaluate['model']}, on {evaluate['eval_rows']} of "
            f"{evaluate['eval_rows_total']} evaluation rows)", "",
            markdown_table(SCORE_HEADER, score_rows(evaluate["instruction_summary"])),
            "", f"Fits ran on the {evaluate.get('backend', 'local')} backend "
            f"({', '.join(evaluate.get('workers') or ['local'])}). "
            "Mean ± sample std over seeds (`full`: one fit). Every fit trains the same "
            "epochs over its rows (or the same `steps`) from the same decoder; the baselines "
            "go through the run's filters. "
            "`short`: rows a set is below its budget after the filters and the refill."]


def loss_png(summary: list[dict[str, Any]]) -> bytes:
    """Held-out loss per token against the training rows of each setting (mean ± std)."""
    from distill_core.report_plots import SETTING_COLOURS, _png, _pyplot

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for entry in summary:
        if "eval_loss" not in entry:
            continue
        rows = sum(entry["rows"]) / len(entry["rows"])
        loss = entry["eval_loss"]
        distilled = entry["setting"] == "distilled"
        axis.errorbar(rows, loss["mean"], yerr=loss["std"] or None,
                      fmt="D" if distilled else "o", capsize=4,
                      color=SETTING_COLOURS.get(entry["setting"], "#333333"),
                      label=f"{entry['method']} ({entry['setting']})")
    axis.set_xscale("log")
    axis.set_xlabel("training rows (log)")
    axis.set_ylabel("held-out response loss / token")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title("Held-out loss against budget", fontsize=10)
    figure.tight_layout()
    return _png(figure)


def _resources(compute: ComputeSection) -> Resources:
    """Each fit is one task on a worker with the learners' CPUs and GPUs (Ray); in process
    the fits run one after another."""
    return Resources(cpus=compute.cpus_per_actor, gpus=compute.gpus_per_actor)


INSTRUCTION_EVALUATE = Stage(
    name="evaluate", version=2,
    writes="scores: one row per sft_lora fit (setting, method, seed, rows, eval_loss, "
           "perplexity, exact_match, timings, the worker it ran on) for the distilled sets, "
           "random subsets and the full pool",
    reads=lambda cfg: ("ingest", "signals", "filter"), settings=_settings, body=_body,
    funnel=EVALUATE.funnel, report=_report, resources=_resources)
