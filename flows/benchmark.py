"""The `benchmark` flow: the standard grid, every cell cached, an interrupted grid resumed.

datasets × methods × budgets → one pipeline run each (prepare tasks), then
learners × seeds × label modes → cells, scored in process or on Ray, each saved
as it finishes; then scores.parquet, the metrics and report.md/.html with plots.
A rerun of a finished grid only checks fingerprints and rebuilds the report.
The scores are published as a Markdown artifact keyed by the benchmark id
(`<bench-id slug>-benchmark-scores`). The config parameter is typed
(`BenchConfig`), so the Prefect UI's run form shows one field per setting.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

from distill_core.bench.cells import load_cell
from distill_core.bench.config import BenchConfig
from distill_core.bench.grid import bench_dir, finalize, plan_cells, plan_groups
from distill_core.bench.report import panel_tables_md
from tasks.bench import prepare_task, score_task
from tasks.stages import artifact_key


def _run_name() -> str:
    """The benchmark id (name and config hash), then its datasets."""
    cfg = BenchConfig.model_validate(flow_run.parameters.get("config", {}))
    return f"bench {cfg.bench_id()} ({'+'.join(cfg.dataset_names())})"


@flow(name="benchmark", flow_run_name=_run_name, log_prints=True)
def benchmark(config: BenchConfig, runs_dir: str = "runs") -> dict[str, Any]:
    """Run (or resume) the benchmark grid; returns the benchmark folder and report paths.

    Args:
        config: The benchmark grid (`textdistill bench CONFIG.yaml` reads the same settings).
        runs_dir: Where run and benchmark folders go; on a cluster, a path every worker sees.
    """
    start = time.perf_counter()
    cfg = BenchConfig.model_validate(config)  # a dict when called outside Prefect's validation
    groups = plan_groups(cfg, runs_dir)
    for group in groups:
        prepare_task.with_options(
            task_run_name=f"prepare-{group.dataset}-{group.method}-{group.per_class}pc")(
            group.config.model_dump(mode="json"), group.run_dir)
    cells = plan_cells(cfg, groups)
    out = bench_dir(cfg, runs_dir)
    cells_dir = str(out / "cells")
    pending = [c for c in cells if load_cell(cells_dir, c.key) is None]
    learners = {spec.label(): spec.model_dump(mode="json") for spec in cfg.learners}
    if pending:
        score_task([asdict(c) for c in pending], learners, cells_dir,
                   cfg.compute.model_dump(mode="json"), cfg.faults.kill_after_cells)
    rows = [row for c in cells if (row := load_cell(cells_dir, c.key)) is not None]
    facts = finalize(cfg, out, cells, rows, len(pending), time.perf_counter() - start)
    if FlowRunContext.get() is not None:
        summary = json.loads((out / "summary.json").read_text())
        create_markdown_artifact(
            key=artifact_key(facts["bench_id"], "benchmark-scores"),
            markdown=panel_tables_md(summary, cfg.soft_labels) + (
                f"\n\nReport: `{facts['report']}` (HTML: `{facts['report_html']}`, plots in "
                f"`{out / 'plots'}`)"), description=f"benchmark {facts['bench_id']}")
    return {"dir": str(out), "report": facts["report"], "report_html": facts["report_html"],
            "cells": len(cells), "cells_scored": len(pending)}
