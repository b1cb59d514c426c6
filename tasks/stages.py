"""The Prefect task that runs one declared stage, its log line and table artifact.

The task takes the stage's name, the run config (a small dict) and the run
folder's path, and returns the path of the artifact it wrote; nothing large
crosses a task boundary. It logs one INFO line (status, rows in/out, wall time)
and publishes a table artifact with the stage's counts under a key unique to the
run (`<run-id slug>-<stage>-counts`), so the Prefect UI shows the funnel as the
run goes. A stage found done in the run folder or restored from the cache ends
in Prefect's `Cached` state (a Completed state of that name). Stages that load
models or reach Ray workers retry (`Stage.retries`), but only on failures a
retry can fix (`retry_transient`): a config or data error, a validation error, a
full disk or a read-only folder fails at once, as the one-line error of
`user_error`. The report task publishes report.md as the run's Markdown artifact.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.states import Completed, State

from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.errors import user_error
from distill_core.pipeline.order import stage_named
from distill_core.pipeline.runner import StageOutcome, run_stage
from distill_core.pipeline.stage import StageContext
from distill_core.report import write_report
from tasks.executors import make_executor
from tasks.progress import report

REUSED = ("resumed", "cached")  # StageOutcome.status values of a stage that did not compute
MAX_REPORT_CHARS = 60_000  # a report artifact beyond this is cut at a line (the file is whole)


def artifact_key(run_id: str, suffix: str) -> str:
    """A Prefect artifact key unique to a run: the run id (name and config hash) made of
    lowercase letters, digits and dashes, then `suffix` (e.g. `filter-counts`)."""
    slug = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")
    return f"{slug}-{suffix}"


def _log(outcome: StageOutcome) -> None:
    """One INFO line per stage on the task run's logger (sent to the Prefect server)."""
    if TaskRunContext.get() is None:
        return
    counts = outcome.counts
    get_run_logger().info(
        "stage %s %s: rows in %s, rows out %s, rejected %s, wall time %.1f s", outcome.stage,
        outcome.status, counts.get("rows_in"), counts.get("rows_out"),
        counts.get("rows_rejected"), outcome.wall_time_s)


def _publish(outcome: StageOutcome, store: RunStore) -> None:
    """A table artifact with the stage's counts (only inside a Prefect task run)."""
    if TaskRunContext.get() is None:
        return
    counts = outcome.counts
    rows: list[dict[str, Any]] = [
        {"metric": "status", "value": outcome.status},
        {"metric": "rows in", "value": counts.get("rows_in")},
        {"metric": "rows out", "value": counts.get("rows_out")},
        {"metric": "rows rejected", "value": counts.get("rows_rejected")},
        {"metric": "wall time (s)", "value": outcome.wall_time_s},
    ]
    rows += [{"metric": f"rejected: {reason}", "value": n}
             for reason, n in (counts.get("rejects_by_reason") or {}).items()]
    manifest = store.manifest(outcome.stage) or {}
    rows += [{"metric": f"filter {step['filter']}: in -> out",
              "value": f"{step['rows_in']} -> {step['rows_out']}"}
             for step in manifest.get("filters", [])]
    if "rows_computed" in manifest:  # signals: texts found in the row cache / embedded now
        rows.append({"metric": "rows reused / computed",
                     "value": f"{manifest['rows_reused']} / {manifest['rows_computed']}"})
    if "files_parsed" in manifest:  # ingest: a folder's files taken from the cache / parsed
        rows.append({"metric": "files reused / parsed",
                     "value": f"{manifest['files_reused']} / {manifest['files_parsed']}"})
        rows.append({"metric": "source rows reused / parsed",
                     "value": f"{manifest['rows_reused']} / {manifest['rows_parsed']}"})
    if "peak_rss_mb" in manifest:
        rows.append({"metric": "peak RSS (MiB)", "value": manifest["peak_rss_mb"]})
    create_table_artifact(
        key=artifact_key(store.run_id, f"{outcome.stage}-counts"), table=rows,
        description=f"{outcome.stage} of run {store.run_id}: {outcome.path}")


def retry_transient(task: Any, task_run: Any, state: State) -> bool:
    """Prefect's `retry_condition_fn`: retry only what a retry can fix. A TextDistillError
    (config, data, disk, a damaged artifact), a ValueError (validation) or an OS error of the
    file system fails at once."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001 - an unreadable result: let the retries decide
            return True
    if not isinstance(exc, BaseException) or isinstance(exc, ConnectionError):
        return True  # a worker or the network dropped: what retries are for
    return not (isinstance(exc, ValueError) or user_error(exc) is not None)


@contextmanager
def user_errors(run_dir: str) -> Iterator[None]:
    """Raise expected failures (a full disk, a read-only folder, a damaged manifest) as the
    project's one-line TextDistillError, the original as its cause; bugs pass unchanged."""
    try:
        yield
    except Exception as exc:
        error = user_error(exc, run_dir)
        if error is None or error is exc or isinstance(exc, ConnectionError):
            raise  # a ConnectionError stays one, so the stage's retries still apply
        raise error from exc


def run_named_stage(stage: str, config: dict[str, Any], run_dir: str) -> StageOutcome:
    """Run one stage in process with the configured executor; reports progress and counts."""
    cfg = RunConfig.model_validate(config)
    store = RunStore.open_or_create(run_dir)
    ctx = StageContext(cfg, store, make_executor(cfg.compute, cfg.faults), report)
    outcome = run_stage(stage_named(stage), ctx)
    report(stage, 1, 1, outcome.status)
    _log(outcome)
    _publish(outcome, store)
    return outcome


@task(name="stage", cache_policy=NO_CACHE, retry_condition_fn=retry_transient)
def stage_task(stage: str, config: dict[str, Any], run_dir: str) -> str | State[str]:
    """One pipeline stage (named by the flow with `with_options(name=...)`). A stage that did
    not compute (resumed in the run folder, restored from the cache) returns a `Cached` state
    holding the path; call with `return_state=True` and take `.result()` for the path."""
    with user_errors(run_dir):
        outcome = run_named_stage(stage, config, run_dir)
    if outcome.status in REUSED:
        return Completed(name="Cached", data=outcome.path,
                         message=f"{stage} {outcome.status}: fingerprint "
                                 f"{outcome.fingerprint[:12]} matched")
    return outcome.path


def report_markdown(report_path: Path) -> str:
    """The run's Markdown artifact: report.md as it is (its scores come right after the
    header), cut at a line past MAX_REPORT_CHARS saying where the whole file is, then where
    the Markdown and HTML reports are."""
    text = report_path.read_text(encoding="utf-8")
    if len(text) > MAX_REPORT_CHARS:
        cut = text.rfind("\n", 0, MAX_REPORT_CHARS)
        text = (text[:cut if cut > 0 else MAX_REPORT_CHARS] + f"\n\n*(report truncated at "
                f"{MAX_REPORT_CHARS} characters; the whole file is `{report_path}`)*\n")
    html = report_path.with_suffix(".html")
    return "\n".join([text.rstrip("\n"), "", "---", "", f"Report: `{report_path}`"
                      + (f"; with figures: `{html}`" if html.is_file() else "")])


@task(name="report", cache_policy=NO_CACHE, retry_condition_fn=retry_transient)
def report_task(run_dir: str) -> str:
    """Write report.md and report.html (unless unchanged) and publish report.md as the run's
    Markdown artifact (`<run-id slug>-report`)."""
    with user_errors(run_dir):
        path = write_report(run_dir)
        store = RunStore.open(run_dir)
        markdown = report_markdown(path)
    if TaskRunContext.get() is not None:
        create_markdown_artifact(key=artifact_key(store.run_id, "report"), markdown=markdown,
                                 description=f"report of run {store.run_id}")
    return str(path)
