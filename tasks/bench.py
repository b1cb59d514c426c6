"""Prefect tasks of the benchmark flow: prepare one grid group, score cells.

`prepare_task` runs one pipeline run up to its filtered distilled sets (every
stage resumes or comes from the cross-run cache when it can). `score_task`
scores the pending cells of one run folder in process; with
`compute.backend: ray`, `ray_score` sends each run folder's cells to a Ray task
that asks for the configured CPUs/GPUs, reading the artifacts from the shared
runs folder.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from distill_core import stages
from distill_core.artifacts.store import RunStore
from distill_core.bench.cells import Cell, score_cells
from distill_core.config import ComputeSection, RunConfig
from distill_core.evaluate.learners import LearnerSpec
from tasks.progress import report
from tasks.stages import (
    make_encoder,
    make_generator_trainer,
    make_selector,
    make_shard_runner,
    teacher_predictor,
)


@task(name="prepare", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def prepare_task(config: dict[str, Any], run_dir: str) -> str:
    """ingest → signals → teacher → (clean) → (generate) → synthesize → filter for one group."""
    cfg, store = RunConfig.model_validate(config), RunStore.open_or_create(run_dir)
    stages.ingest_stage(cfg, store, report)
    stages.signals_stage(cfg, store, lambda: make_encoder(cfg), report,
                         backend=cfg.compute.backend)
    stages.teacher_stage(cfg, store, report, teacher_predictor(cfg))
    stages.clean_stage(cfg, store, report)
    stages.generate_stage(cfg, store, lambda: make_encoder(cfg), make_shard_runner(cfg),
                          make_generator_trainer(cfg), report, teacher_predictor(cfg))
    stages.synthesize_stage(cfg, store, report, make_selector(cfg))
    stages.filter_stage(cfg, store, report)
    return run_dir


def _score(cells: list[dict[str, Any]], learners: dict[str, dict[str, Any]], cells_dir: str,
           kill_after: int | None, total: int = 0, done_before: int = 0) -> list[dict[str, Any]]:
    specs = {name: LearnerSpec.model_validate(spec) for name, spec in learners.items()}
    counter = {"n": done_before}

    def tick(cell: Cell, row: dict[str, Any]) -> None:
        counter["n"] += 1
        report("bench", counter["n"], total or None,
               f"{cell.dataset} {cell.method} {cell.per_class or ''} {cell.learner} "
               f"seed {cell.seed}: {100 * row['accuracy']:.1f}%")

    return score_cells([Cell(**c) for c in cells], specs, cells_dir, kill_after, tick)


@task(name="score", cache_policy=NO_CACHE)
def score_task(cells: list[dict[str, Any]], learners: dict[str, dict[str, Any]],
               cells_dir: str, kill_after: int | None = None, total: int = 0,
               done_before: int = 0) -> int:
    """Score one run folder's pending cells; returns how many were scored."""
    return len(_score(cells, learners, cells_dir, kill_after, total, done_before))


def cells_by_run(cells: list[Cell]) -> dict[str, list[dict[str, Any]]]:
    """Cells (as plain dicts for task parameters) grouped by the run folder they read."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        groups.setdefault(cell.run_dir, []).append(asdict(cell))
    return groups


def ray_score(cells: list[Cell], learners: dict[str, dict[str, Any]], cells_dir: str,
              compute: ComputeSection) -> int:
    """Score cells as Ray tasks, one per run folder, each with the configured resources."""
    import ray

    from tasks.ray_backend import ensure_ray

    ensure_ray(compute.ray_address)
    remote = ray.remote(num_cpus=compute.cpus_per_actor, num_gpus=compute.gpus_per_actor,
                        max_retries=2)(_score)
    futures = [remote.remote(group, learners, cells_dir, None)
               for group in cells_by_run(cells).values()]
    done = 0
    for future in futures:
        done += len(ray.get(future))
        report("bench", done, len(cells), "Ray")
    return done
