"""Plan a benchmark grid and turn its scored cells into the benchmark's artifacts.

`plan_groups` lists the pipeline runs (dataset × method × budget) that make the
distilled sets; `plan_cells` lists every score the grid needs once those runs
exist; `finalize` writes `scores.parquet` (one row per cell), `summary.json`
(the metrics), `bench.json` (config, hash, seeds, versions, inputs) and the
reports. Orchestration (Prefect, Ray) lives in `flows/` and `tasks/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill_core.artifacts.manifest import package_versions
from distill_core.artifacts.store import RunStore
from distill_core.bench.cells import FULL, Cell, cell_key
from distill_core.bench.config import BenchConfig
from distill_core.bench.metrics import summarize
from distill_core.bench.report import write_reports
from distill_core.config import RunConfig
from distill_core.errors import ArtifactError
from distill_core.pipeline.order import STAGE_NAMES

SCORES_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("method", pa.string()), ("per_class", pa.int32()),
    ("learner", pa.string()), ("labels", pa.string()), ("seed", pa.int64()),
    ("replicate", pa.int32()), ("n_train", pa.int64()), ("n_eval", pa.int64()),
    ("accuracy", pa.float64()), ("macro_f1", pa.float64()), ("converged", pa.bool_()),
    ("wall_time_s", pa.float64()), ("peak_rss_mb", pa.float64()), ("note", pa.string()),
    ("run_dir", pa.string()), ("key", pa.string()),
])


@dataclass(frozen=True)
class Group:
    """One pipeline run of the grid: its distilled sets feed every learner's cells."""

    dataset: str
    method: str
    per_class: int
    config: RunConfig
    run_dir: str


def bench_dir(cfg: BenchConfig, runs_dir: str | Path) -> Path:
    return Path(runs_dir).resolve() / cfg.bench_id()


def plan_groups(cfg: BenchConfig, runs_dir: str | Path) -> list[Group]:
    groups = []
    for dataset in cfg.dataset_names():
        for method in cfg.methods:
            for budget in cfg.budgets:
                run = cfg.run_config(dataset, method, budget)
                groups.append(Group(dataset, method, budget, run,
                                    str(Path(runs_dir).resolve() / run.run_id())))
    return groups


def carries_soft_labels(store: RunStore) -> bool:
    """Whether a run's distilled set carries soft labels on every row (learned ones, e.g.
    `synthesize.labels` or a learned method's): then its soft-label cells are scored too."""
    column = store.read("filter", columns=["soft_label"]).column("soft_label")
    return len(column) > 0 and column.null_count == 0


def plan_cells(cfg: BenchConfig, groups: list[Group]) -> list[Cell]:
    """Every cell of the grid (the groups' runs must have reached the filter stage)."""
    cells: list[Cell] = []
    stores = {g.run_dir: RunStore.open(g.run_dir) for g in groups}
    soft_runs = {run_dir for run_dir, store in stores.items()  # read once, not per learner
                 if cfg.soft_labels or carries_soft_labels(store)}
    for learner in cfg.learners:
        seeds = cfg.learner_seeds(learner)
        for group in groups:
            if not learner.covers(group.dataset, group.method, group.per_class):
                continue
            label_modes = ["hard", "soft"] if group.run_dir in soft_runs else ["hard"]
            for seed in seeds:
                for labels in label_modes if learner.soft else ["hard"]:
                    key = cell_key(learner, seed, labels, group.dataset, group.method,
                                   group.per_class, stores[group.run_dir])
                    cells.append(Cell(group.dataset, group.method, group.per_class,
                                      learner.label(), seed, cfg.seeds.index(seed), labels,
                                      group.run_dir, key))
        for dataset in cfg.dataset_names():
            first = next(g for g in groups if g.dataset == dataset)
            if learner.datasets is not None and dataset not in learner.datasets:
                continue
            for seed in seeds[:learner.full_seeds]:
                key = cell_key(learner, seed, "hard", dataset, FULL, None,
                               stores[first.run_dir])
                cells.append(Cell(dataset, FULL, None, learner.label(), seed, None, "hard",
                                  first.run_dir, key))
    return cells


def finalize(cfg: BenchConfig, out_dir: Path, cells: list[Cell], rows: list[dict[str, Any]],
             scored: int, wall_time_s: float) -> dict[str, Any]:
    """Write scores.parquet, summary.json, bench.json and the reports; return the facts."""
    by_key = {r["key"]: r for r in rows}
    missing = [c.key for c in cells if c.key not in by_key]
    if missing:
        raise RuntimeError(f"{len(missing)} grid cells have no score (first: {missing[0]})")
    ordered = [by_key[c.key] for c in cells]
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([{f: r.get(f) for f in SCORES_SCHEMA.names} for r in ordered],
                                 schema=SCORES_SCHEMA)
    pq.write_table(table, out_dir / "scores.parquet")
    summary = summarize(ordered)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    inputs = {}
    for run_dir in dict.fromkeys(c.run_dir for c in cells):
        store = RunStore.open(run_dir)
        inputs[Path(run_dir).name] = {s: m["fingerprint"] for s in STAGE_NAMES
                                      if s != "evaluate" and (m := store.manifest(s))}
    facts = {"bench_id": cfg.bench_id(), "config": cfg.model_dump(mode="json"),
             "config_hash": cfg.bench_id().rsplit("-", 1)[1], "seeds": cfg.seeds,
             "cells": len(cells), "cells_scored": scored,
             "cell_seconds_total": round(sum(r["wall_time_s"] for r in ordered), 1),
             "wall_time_s": round(wall_time_s, 1), "versions": package_versions(),
             "inputs": inputs}
    (out_dir / "bench.json").write_text(json.dumps(facts, indent=2))
    md, html_path = write_reports(out_dir, summary, facts)
    return {**facts, "report": str(md), "report_html": str(html_path), "dir": str(out_dir)}


def rebuild_report(out_dir: str | Path) -> Path:
    """report.md and report.html again from a finished benchmark folder."""
    out_dir = Path(out_dir)
    facts, summary = (_bench_json(out_dir / name) for name in ("bench.json", "summary.json"))
    md, _ = write_reports(out_dir, summary, facts)
    return md


def _bench_json(path: Path) -> Any:
    """One of a benchmark folder's JSON records; a missing or damaged one is one error line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing, so {path.parent} is no finished benchmark "
                            "folder: rerun the benchmark to write it") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise ArtifactError(f"{path}: not valid JSON ({exc}); the benchmark folder is "
                            "damaged: rerun the benchmark to write it again") from None
