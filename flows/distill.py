"""The `distill` flow: the declared pipeline (`distill_core.pipeline.order.PIPELINE`), one
Prefect task run per stage the config needs, then the report.

Tasks hand each other the run folder's path; every stage reads its inputs from
the artifacts upstream stages wrote there. Runs with no Prefect server (an
ephemeral one is started on 127.0.0.1) or against `PREFECT_API_URL`. Before any
stage, the config is checked against the encoder's token limit; a stage retries
only on failures a retry can fix (`tasks.stages.retry_transient`); a stage found
done or in the cache ends in the `Cached` state. The config parameter is typed
(`RunConfig`), so a deployment's run form in the Prefect UI shows one field per
setting, with its description and default; a dict is validated into it.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, tags
from prefect.runtime import flow_run

from distill_core.artifacts.location import Where, location
from distill_core.config import RunConfig
from distill_core.model_limits import check_model_limits
from distill_core.pipeline.order import active_stages
from tasks.stages import report_task, retry_transient, stage_task


def _budget(cfg: RunConfig) -> str:
    """The budget as a tag reads it: per class, or instruction data's fraction or rows."""
    if cfg.is_instruction:
        return f"{cfg.synthesize.budget if cfg.synthesize.budget is not None else 0.05:g}"
    return f"{cfg.synthesize.per_class}pc"


def _dataset(cfg: RunConfig) -> str:
    instruction = cfg.data.instruction
    return (instruction.preset if instruction is not None else cfg.data.dataset) or "custom"


def _run_name() -> str:
    """Flow run names that tell runs apart: the run id (name and config hash), then what
    runs: dataset, method, budget."""
    cfg = RunConfig.model_validate(flow_run.parameters.get("config", {}))
    return f"{cfg.run_id()} ({_dataset(cfg)} {cfg.synthesize.method} {_budget(cfg)})"


def run_tags(cfg: RunConfig) -> list[str]:
    """Tags of a distill flow run, to filter runs in the Prefect UI."""
    return ["textdistill", f"dataset:{_dataset(cfg)}",
            f"method:{cfg.synthesize.method}", f"budget:{_budget(cfg)}",
            f"backend:{cfg.compute.backend}", f"run:{cfg.run_id()}"]


def tag_flow_run(cfg: RunConfig) -> None:
    """Give the current flow run the tags of `run_tags` when it was created without them (a
    deployment's scheduled or UI-started run; `textdistill run` sets them at creation)."""
    missing = [tag for tag in run_tags(cfg) if tag not in (flow_run.tags or [])]
    if not missing or flow_run.id is None:
        return
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, tags=[*(flow_run.tags or []), *missing])
    except Exception as exc:  # noqa: BLE001 - tags help filtering; the run goes on without
        get_run_logger().warning("could not tag flow run %s: %s", flow_run.id, exc)


def run_dir_for(config: RunConfig, runs_dir: str | Path) -> Where:
    """The run's folder: a local path, or a place in an object store for a URI."""
    return location(runs_dir) / config.run_id()


@flow(name="distill", flow_run_name=_run_name, log_prints=True)
def distill(config: RunConfig, runs_dir: str = "runs") -> dict[str, str]:
    """Distil the configured dataset; returns the run folder and the report's path.

    Args:
        config: The run config (`textdistill run CONFIG.yaml` reads the same settings).
        runs_dir: Where run folders go; on a cluster, a path every worker sees.
    """
    cfg = RunConfig.model_validate(config)  # a dict when called outside Prefect's validation
    check_model_limits(cfg)
    run_dir = str(run_dir_for(cfg, runs_dir))
    settings = cfg.model_dump(mode="json")  # tasks get a small dict (hashable, serialisable)
    tag_flow_run(cfg)
    with tags(*run_tags(cfg)):  # task runs carry the run's tags too, however it started
        for stage in active_stages(cfg):
            # Retries (model loading, remote workers) only for what a retry can fix.
            stage_task.with_options(name=stage.name, task_run_name=stage.name,
                                    retries=stage.retries, retry_delay_seconds=2,
                                    retry_condition_fn=retry_transient)(
                stage.name, settings, run_dir, return_state=True).result()  # Cached/Completed
        report = report_task.with_options(task_run_name="report")(run_dir)
    return {"run_dir": run_dir, "report": report}
