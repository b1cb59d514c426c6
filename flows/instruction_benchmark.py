"""The `instruction-benchmark` flow: instruction methods × budgets × seeds, each a pipeline run.

Each (dataset, method, budget) group is one run through `evaluate` (a Prefect task:
every stage resumes or comes from the cross-run cache), its `sft_lora` fits in
process or as Ray tasks (`compute.backend`); the baselines are fitted once per
(dataset, budget) and dataset. Then fits.json, summary.json, bench.json and
report.md/.html with one held-out-loss-against-budget plot per dataset. A rerun
of a finished grid resumes every run and rebuilds the report.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from distill_core.artifacts.store import RunStore
from distill_core.bench.instruction import (
    InstructionBenchConfig,
    bench_dir,
    finalize,
    plan_groups,
)
from distill_core.config import RunConfig
from distill_core.pipeline.order import run_pipeline
from distill_core.pipeline.stage import StageContext
from tasks.executors import make_executor
from tasks.progress import report


def _run_name() -> str:
    cfg = InstructionBenchConfig.model_validate(flow_run.parameters.get("config", {}))
    return f"bench {cfg.bench_id()} ({'+'.join(cfg.dataset_names())})"


@task(name="instruction-run", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def run_group_task(config: dict[str, Any], run_dir: str) -> bool:
    """One group's pipeline through `evaluate`; True when a stage had to be computed."""
    cfg = RunConfig.model_validate(config)
    ctx = StageContext(cfg, RunStore.open_or_create(run_dir),
                       make_executor(cfg.compute, cfg.faults), report)
    return any(o.status == "computed" for o in run_pipeline(ctx))


@flow(name="instruction-benchmark", flow_run_name=_run_name, log_prints=True)
def instruction_benchmark(config: InstructionBenchConfig, runs_dir: str = "runs"
                          ) -> dict[str, Any]:
    """Run (or resume) the instruction grid; returns the benchmark folder and report paths.

    Args:
        config: The grid (`textdistill bench CONFIG.yaml` with `task: instruction`).
        runs_dir: Where run and benchmark folders go; on a cluster, a path every worker sees.
    """
    start = time.perf_counter()
    cfg = InstructionBenchConfig.model_validate(config)
    groups = plan_groups(cfg, runs_dir)
    computed = 0
    for group in groups:
        computed += bool(run_group_task.with_options(
            task_run_name=f"run-{group.dataset}-{group.method}-{group.budget:g}")(
            group.config.model_dump(mode="json"), group.run_dir))
    facts = finalize(cfg, bench_dir(cfg, runs_dir), groups, computed,
                     time.perf_counter() - start)
    return {"dir": facts["dir"], "report": facts["report"], "report_html": facts["report_html"],
            "runs": facts["runs"], "runs_computed": computed, "fits": facts["fits"]}
