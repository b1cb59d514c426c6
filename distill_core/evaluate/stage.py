"""The evaluate stage: every configured learner on the distilled sets and on the baselines.

Each learner (`EvaluationPlan.learners`, from the run's `evaluate.learners`)
trains on each seed's distilled set (replicate), on hard labels and, when the
set carries them, on soft labels; the `random` baseline draws one stratified
random subset per seed at the same budget; `full` trains once on the training
split (with the first seed; its row has no seed or replicate). With the run's
filters (`EvaluationData.filters`) both baselines go through them as the
distilled sets did (`evaluate/baselines.py`). Each score row carries `short`:
the rows its set is below the budget (per_class x classes).
`summarize_scores` gives mean ± std (sample std, ddof=1) per learner and setting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from distill_core.evaluate.baselines import rows_short
from distill_core.evaluate.data import EvaluationData
from distill_core.evaluate.linear_probe import ProbeScore
from distill_core.learners import LearnerSpec, TrainingRows, score_learner
from distill_core.learners.registry import get_learner

if TYPE_CHECKING:
    from distill_core.config import RunConfig

SCORES_SCHEMA = pa.schema([
    ("learner", pa.string()), ("setting", pa.string()), ("method", pa.string()),
    ("replicate", pa.int32()), ("seed", pa.int64()), ("per_class", pa.int32()),
    ("n_train", pa.int64()), ("accuracy", pa.float64()), ("macro_f1", pa.float64()),
    ("converged", pa.bool_()), ("wall_time_s", pa.float64()), ("note", pa.string()),
    ("short", pa.int64()),
])


@dataclass(frozen=True)
class EvaluationPlan:
    """What to score: a method's sets at its budget, by which learners, next to which baselines.

    Attributes:
        method: the method that made the distilled sets (the `method` column).
        per_class: the budget, also the random baseline's.
        seeds: one per replicate, in replicate order; replicate r trains with `seeds[r]`.
        learners: the learners, each scored on everything below.
        baselines: `random` (one subset per seed) and/or `full` (the training split, once).
    """

    method: str
    per_class: int
    seeds: list[int]
    learners: list[LearnerSpec]
    baselines: list[str]

    @classmethod
    def from_config(cls, cfg: RunConfig) -> EvaluationPlan:
        return cls(method=cfg.synthesize.method, per_class=cfg.synthesize.per_class,
                   seeds=list(cfg.run.seeds),
                   learners=cfg.evaluate.learner_specs(cfg.teacher.temperature),
                   baselines=list(cfg.evaluate.baselines))


@dataclass(frozen=True)
class Fit:
    """One training set of a learner and the columns its score row gets."""

    setting: str
    method: str
    replicate: int | None
    seed: int | None
    per_class: int | None
    rows: TrainingRows
    short: int | None = None  # rows below per_class x classes; None: no budget (full)


def planned_fits(data: EvaluationData, plan: EvaluationPlan, learner: LearnerSpec
                 ) -> Iterator[Fit]:
    """The fits of one learner, in order: per replicate distilled (hard, soft), random; full."""
    if data.distilled is None:
        raise RuntimeError("nothing to evaluate: the run has no distilled sets (filter stage)")
    pool = data.pool
    if get_learner(learner.kind).synthetic_only:  # the synthetic tensors, not text
        for replicate, seed in enumerate(plan.seeds):
            rows = pool.replicate(data.distilled, replicate)
            if rows.synthetic is not None:
                yield Fit("distilled", plan.method, replicate, seed, plan.per_class, rows,
                          rows_short(rows.data.y, data.n_labels, plan.per_class))
        return
    for replicate, seed in enumerate(plan.seeds):
        rows = pool.replicate(data.distilled, replicate)
        short = rows_short(rows.data.y, data.n_labels, plan.per_class)
        yield Fit("distilled", plan.method, replicate, seed, plan.per_class, rows.hard(), short)
        if learner.soft and rows.soft is not None:
            yield Fit("distilled_soft", f"{plan.method}+soft", replicate, seed, plan.per_class,
                      rows, short)
        if "random" in plan.baselines:
            subset = data.random_subset(plan.per_class, seed)
            yield Fit("random", "random", replicate, seed, plan.per_class,
                      pool.sample(subset.rows), subset.short)
    if "full" in plan.baselines:
        yield Fit("full", "full", None, None, None, pool.sample(data.full_subset().rows))


def count_fits(data: EvaluationData, plan: EvaluationPlan) -> int:
    """How many fits `evaluate_selection` makes (and progress ticks it sends)."""
    return sum(1 for learner in plan.learners for _ in planned_fits(data, plan, learner))


def evaluate_selection(data: EvaluationData, plan: EvaluationPlan,
                       progress: Callable[[str], None] | None = None) -> pa.Table:
    """Scores of every learner on every replicate and baseline of `plan`, one row per fit."""
    rows = []
    for learner in plan.learners:
        for fit in planned_fits(data, plan, learner):
            score = score_learner(learner, fit.rows, data.evaluation, data.labels,
                                  plan.seeds[0] if fit.seed is None else fit.seed)
            rows.append(_row(learner.label(), fit, score))
            if progress:
                progress(f"{learner.label()}: {fit.method} "
                         + ("full data" if fit.seed is None else f"seed {fit.seed}"))
    return pa.Table.from_pylist(rows, schema=SCORES_SCHEMA)


def _row(learner: str, fit: Fit, score: ProbeScore) -> dict[str, Any]:
    return {"learner": learner, "setting": fit.setting, "method": fit.method,
            "replicate": fit.replicate, "seed": fit.seed, "per_class": fit.per_class,
            "n_train": score.n_train, "accuracy": score.accuracy, "macro_f1": score.macro_f1,
            "converged": score.converged, "wall_time_s": score.wall_time_s, "note": score.note,
            "short": fit.short}


def summarize_scores(scores: pa.Table) -> list[dict[str, Any]]:
    """Mean, sample std and count of accuracy and macro-F1 per (learner, setting), in
    first-seen order; `short`: each fit's rows below the budget, in fit order (None for a
    setting without a budget)."""
    summary: dict[tuple[str, str], dict[str, Any]] = {}
    for row in scores.to_pylist():
        learner = row.get("learner") or "linear_probe"  # scores written before learners
        entry = summary.setdefault((learner, row["setting"]), {
            "learner": learner, "setting": row["setting"], "method": row["method"],
            "per_class": row["per_class"], "accuracy": [], "macro_f1": [],
            "n_train": row["n_train"], "short": []})
        entry["accuracy"].append(row["accuracy"])
        entry["macro_f1"].append(row["macro_f1"])
        entry["short"].append(row.get("short"))
    out = []
    for entry in summary.values():
        acc, f1 = np.asarray(entry.pop("accuracy")), np.asarray(entry.pop("macro_f1"))
        if all(s is None for s in entry["short"]):
            entry["short"] = None
        out.append({**entry, "n": len(acc),
                    "accuracy_mean": float(acc.mean()),
                    "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                    "macro_f1_mean": float(f1.mean()),
                    "macro_f1_std": float(f1.std(ddof=1)) if len(f1) > 1 else 0.0})
    return out
