"""Prefect tasks of the benchmark flow: prepare one grid group, score cells.

`prepare_task` runs one pipeline run up to its filtered distilled sets (every
stage resumes or comes from the cross-run cache when it can). `score_task`
scores the pending cells, one executor task per run folder: in process one
after another, or as Ray tasks asking for the configured CPUs/GPUs, each
reading its artifacts from the shared runs folder.
"""

from __future__ import annotations

import os
import signal
from dataclasses import asdict, dataclass
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from distill_core.artifacts.store import RunStore
from distill_core.bench.cells import Cell, score_cells
from distill_core.config import ComputeSection, RunConfig
from distill_core.learners import LearnerSpec
from distill_core.pipeline.executor import Resources
from distill_core.pipeline.order import run_pipeline
from distill_core.pipeline.stage import StageContext
from tasks.executors import make_executor
from tasks.progress import report


@task(name="prepare", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def prepare_task(config: dict[str, Any], run_dir: str) -> str:
    """The declared pipeline up to `filter` for one group (what its cells score)."""
    cfg = RunConfig.model_validate(config)
    ctx = StageContext(cfg, RunStore.open_or_create(run_dir),
                       make_executor(cfg.compute, cfg.faults), report)
    run_pipeline(ctx, until="filter")
    return run_dir


@dataclass(frozen=True)
class ScoreJob:
    """What every group's scoring shares: learners, where cells go, progress, fault drill."""

    learners: dict[str, dict[str, Any]]
    cells_dir: str
    kill_after: int | None
    total: int


def score_group(job: ScoreJob, group: tuple[list[dict[str, Any]], int]) -> int:
    """Score one run folder's pending cells (saved as each finishes); how many were scored.

    `group`: the cells, and how many pending cells the groups before it hold (progress)."""
    cells, done_before = group
    specs = {name: LearnerSpec.model_validate(spec) for name, spec in job.learners.items()}
    counter = {"n": done_before}

    def tick(cell: Cell, row: dict[str, Any]) -> None:
        counter["n"] += 1
        report("bench", counter["n"], job.total or None,
               f"{cell.dataset} {cell.method} {cell.per_class or ''} {cell.learner} "
               f"seed {cell.seed}: {100 * row['accuracy']:.1f}%")
        if job.kill_after is not None and counter["n"] - done_before >= job.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # fault drill: the cells so far are saved

    return len(score_cells([Cell(**c) for c in cells], specs, job.cells_dir, tick))


def cells_by_run(cells: list[Cell]) -> dict[str, list[dict[str, Any]]]:
    """Cells (as plain dicts for task parameters) grouped by the run folder they read."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        groups.setdefault(cell.run_dir, []).append(asdict(cell))
    return groups


@task(name="score", cache_policy=NO_CACHE)
def score_task(cells: list[dict[str, Any]], learners: dict[str, dict[str, Any]],
               cells_dir: str, compute: dict[str, Any], kill_after: int | None = None) -> int:
    """Score pending cells, one executor task per run folder; returns how many were scored."""
    settings = ComputeSection.model_validate(compute)
    groups = cells_by_run([Cell(**c) for c in cells])
    job = ScoreJob(learners, cells_dir, kill_after, len(cells))
    executor = make_executor(settings)
    offsets = [sum(len(g) for g in list(groups.values())[:i]) for i in range(len(groups))]
    done = executor.map_tasks(score_group, list(zip(groups.values(), offsets, strict=True)),
                              Resources(cpus=settings.cpus_per_actor,
                                        gpus=settings.gpus_per_actor), job)
    scored = sum(n for n, _ in done)
    report("bench", scored, len(cells), executor.name)
    return scored
