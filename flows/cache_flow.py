"""The `cache-prune` flow: `textdistill cache prune` as a scheduled Prefect deployment.

A serve config entry with `flow: cache_prune` (see `flows/serve.py`) runs it on its cron
beside the nightly distill: the prune is one task that, while a stage of some run holds the
cache, tries again every `retry_every_minutes` for up to `wait_minutes` (a prune never
removes what a running stage reads, `distill_core/artifacts/cache_use.py`); any other
failure (a missing runs folder, a bad size) fails at once. The flow run's Artifacts tab
holds a table of what went and what stayed, by kind; its logs say the totals.
"""

from __future__ import annotations

import math
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from distill_core.artifacts.cache_prune import human_size, parse_size, plan_summary, prune
from distill_core.artifacts.cache_use import CacheBusy
from tasks.stages import artifact_key


def _busy(_task: Any, _task_run: Any, state: Any) -> bool:
    """Retry only while a running stage holds the cache."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable result is not a busy cache
        return False
    return isinstance(exc, CacheBusy)


@task(name="prune", cache_policy=NO_CACHE)
def prune_task(runs_dir: str, unused_days: float | None, max_size: str | None,
               dry_run: bool) -> dict[str, Any]:
    plan = prune(runs_dir, unused_days, parse_size(max_size), dry_run)
    return plan_summary(plan, dry_run)


def _table(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for kind in sorted(set(summary["removed"]) | set(summary["kept"])):
        gone = summary["removed"].get(kind, {"entries": 0, "bytes": 0})
        stays = summary["kept"].get(kind, {"entries": 0, "bytes": 0})
        rows.append({"kind": kind, "removed entries": gone["entries"],
                     "removed": human_size(gone["bytes"]), "kept entries": stays["entries"],
                     "kept": human_size(stays["bytes"])})
    return rows


@flow(name="cache-prune", flow_run_name="prune {runs_dir}", log_prints=True)
def cache_prune(runs_dir: str = "runs", unused_days: float | None = 30.0,
                max_size: str | None = None, dry_run: bool = False,
                wait_minutes: float = 120.0, retry_every_minutes: float = 10.0
                ) -> dict[str, Any]:
    """Prune the runs folder's cache: entries unused for `unused_days`, then the least
    recently used down to `max_size` (e.g. 200GB); returns what went and what stayed.

    Args:
        runs_dir: The runs folder (local; a path every worker sees).
        unused_days: Remove entries no run wrote or reused for this many days.
        max_size: Then remove the least recently used until the cache fits this size.
        dry_run: Say what would go; remove nothing.
        wait_minutes: How long to keep trying while runs use the cache.
        retry_every_minutes: How often to try again meanwhile.
    """
    delay = max(retry_every_minutes, 0.0) * 60
    retries = math.ceil(max(wait_minutes, 0.0) * 60 / delay) if delay > 0 else 0
    summary = prune_task.with_options(retries=retries, retry_delay_seconds=delay,
                                      retry_condition_fn=_busy)(
        runs_dir, unused_days, max_size, dry_run)
    verb = "would remove" if dry_run else "removed"
    get_run_logger().info(
        "%s %d entries (%s) and %d temporary files (%s); kept %s", verb,
        summary["removed_entries"], human_size(summary["removed_bytes"]),
        len(summary["leftovers"]), human_size(summary["leftover_bytes"]),
        human_size(summary["kept_bytes"]))
    create_table_artifact(key=artifact_key(runs_dir, "cache-prune"), table=_table(summary),
                          description=f"cache of {runs_dir}: {verb} by kind")
    return summary
