"""Score instruction sets with `sft_lora`: the distilled sets, random subsets and the full pool.

Every fit is a fresh LoRA fine-tune of `instruct.sft.model` under the same
protocol: `instruct.sft.epochs` passes over its rows (or, with
`instruct.sft.steps`, the same step count for every set), scored on the same rows of the
evaluation split (all of it, or a fixed seeded sample of `instruct.eval_rows`):
held-out response loss per token, perplexity, and GSM8K exact match when
`instruct.sft.exact_match_rows` is set. The baselines go through the run's
filters and budget rule as the distilled sets do: `random` is a seeded
permutation of the pool per seed, filtered and cut to the budget (refilled from
its own next rows); `full` is every pool row that passes the filters (one fit,
the first seed).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.config import RunConfig
from distill_core.filter.stage import FilterContext, filter_candidates
from distill_core.instruct.methods import RankedInputs, Ranking, random_ranking
from distill_core.instruct.rows import InstructionRow
from distill_core.instruct.sft import SftOptions, SftResult, sft_lora
from distill_core.pipeline.executor import Executor, Resources
from distill_core.synthesize.stage import select_candidates

SCORE_FIELDS = ["eval_loss", "perplexity", "exact_match"]


def rows_of_table(table: pa.Table) -> list[InstructionRow]:
    """Corpus-shaped rows (prompt in `text`, response in `text_pair`) as instruction rows."""
    data = table.select(["example_id", "text", "text_pair"]).to_pylist()
    return [InstructionRow(r["example_id"], r["text"], r["text_pair"]) for r in data]


def eval_sample(corpus: pa.Table, rows: int | None, seed: int) -> list[InstructionRow]:
    """The evaluation split's rows, or a fixed seeded sample of `rows` of them (file order)."""
    held_out = rows_of_table(corpus.filter(pc.equal(corpus.column("split"), "eval")))
    if rows is None or rows >= len(held_out):
        return held_out
    keep = np.sort(np.random.default_rng(seed).permutation(len(held_out))[:rows])
    return [held_out[int(i)] for i in keep]


@dataclass
class Fit:
    """One training set to fine-tune on."""

    setting: str  # distilled | random | full
    seed: int
    replicate: int
    rows: list[InstructionRow]
    budget: int


def baseline_sets(cfg: RunConfig, pool: pa.Table, budget: int, context: FilterContext,
                  run_id: str) -> list[Fit]:
    """The configured baselines, through the run's filters and budget rule."""
    fits: list[Fit] = []
    seeds = cfg.run.seeds
    if "random" in cfg.evaluate.baselines:
        ranked = min(pool.num_rows, budget * cfg.synthesize.oversample)
        draws = RankedInputs("random", cfg.synthesize.oversample, lambda seed: random_ranking(
            pool.num_rows, budget, seed, ranked))
        candidates = select_candidates(pool, draws, seeds, run_id).candidates
        kept = filter_candidates(candidates, budget, cfg.filter, context).kept
        for replicate, seed in enumerate(seeds):
            rows = kept.filter(pc.equal(kept.column("replicate"), replicate))
            fits.append(Fit("random", seed, replicate, rows_of_table(rows), budget))
    if "full" in cfg.evaluate.baselines:
        every_row = RankedInputs("full", 1, lambda _seed: Ranking(
            np.arange(pool.num_rows), np.full(pool.num_rows, np.nan)))
        candidates = select_candidates(pool, every_row, seeds[:1], run_id).candidates
        kept = filter_candidates(candidates, pool.num_rows, cfg.filter, context).kept
        fits.append(Fit("full", seeds[0], 0, rows_of_table(kept), pool.num_rows))
    return fits


@dataclass(frozen=True)
class FitJob:
    """What every fit shares: the learner's settings, the held-out rows, the method's name and
    the torch threads (a remote worker sets its own)."""

    sft: SftOptions
    held_out: list[InstructionRow]
    method: str
    torch_threads: int | None


def fit_record(job: FitJob, fit: Fit) -> dict[str, Any]:
    """One `sft_lora` fit and its row of scores (runs wherever the executor puts it)."""
    from distill_core.instruct.device import set_torch_threads

    set_torch_threads(job.torch_threads)
    result: SftResult = sft_lora(fit.rows, job.held_out, job.sft, seed=fit.seed)
    return {
        "setting": fit.setting, "method": job.method if fit.setting == "distilled"
        else fit.setting, "learner": "sft_lora", "seed": fit.seed,
        "replicate": fit.replicate, "rows": len(fit.rows), "budget": fit.budget,
        "short": max(0, fit.budget - len(fit.rows)), "eval_loss": result.eval_loss,
        "perplexity": result.perplexity, "exact_match": result.exact_match,
        "exact_match_rows": result.exact_match_rows, "eval_rows": result.eval_rows,
        "eval_tokens": result.eval_tokens,
        "train_loss_last": result.train_losses[-1] if result.train_losses else None,
        "train_s": round(result.train_s, 2), "eval_s": round(result.eval_s, 2),
        "wall_s": round(result.wall_s, 2), "device": result.device}


def score_fits(cfg: RunConfig, fits: list[Fit], held_out: list[InstructionRow],
               tick: Callable[[str], None], executor: Executor | None = None,
               resources: Resources | None = None) -> pa.Table:
    """One `sft_lora` fit per set: one row of scores each, with the worker it ran on.

    In process the fits run one after another and report each score as it comes; on
    another executor (Ray) they run as parallel tasks with `resources` (e.g. a GPU each)."""
    job = FitJob(cfg.instruct.sft, list(held_out), cfg.synthesize.method,
                 cfg.compute.torch_threads)
    records = []
    if executor is None or executor.name == "local":
        for fit in fits:
            record = fit_record(job, fit)
            records.append({**record, "worker": "local"})
            tick(f"{fit.setting} seed {fit.seed}: loss {record['eval_loss']:.3f}")
    else:
        done = executor.map_tasks(fit_record, fits, resources or Resources(), shared=job)
        for fit, (record, where) in zip(fits, done, strict=True):
            records.append({**record, "worker": where})
            tick(f"{fit.setting} seed {fit.seed}: loss {record['eval_loss']:.3f} on {where}")
    return pa.Table.from_pylist(records)


def summarize(scores: pa.Table) -> list[dict[str, Any]]:
    """Per setting: fits, rows, and mean ± sample std of each score over seeds."""
    out = []
    records = scores.to_pylist()
    for setting in dict.fromkeys(r["setting"] for r in records):
        mine = [r for r in records if r["setting"] == setting]
        entry: dict[str, Any] = {"setting": setting, "method": mine[0]["method"],
                                 "fits": len(mine), "rows": [r["rows"] for r in mine],
                                 "budget": mine[0]["budget"],
                                 "short": max(r["short"] for r in mine)}
        for name in SCORE_FIELDS:
            values = [r[name] for r in mine if r[name] is not None]
            if values:
                entry[name] = {"mean": statistics.fmean(values),
                               "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        out.append(entry)
    return out
