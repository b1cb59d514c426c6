"""The scheduled prune (`flows/cache_flow.py`) under the session's Prefect test server: it removes
what went unused, records a table artifact, waits while a stage holds the cache, and fails
with the reason when the wait runs out."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from distill_core.artifacts.cache_use import cache_in_use
from tasks.stages import artifact_key

DAY = 86_400.0


def _cache_with_an_old_and_a_new_part(runs: Path) -> tuple[Path, Path]:
    """Two signals-cache parts (record and data); the first last used 40 days ago."""
    folder = runs / ".cache" / "signals-parts"
    folder.mkdir(parents=True)
    records = []
    for key in ("old", "new"):
        (folder / f"{key}.parquet").write_bytes(b"p" * 1000)
        (folder / f"{key}.json").write_text('{"bytes": 1000}')
        records.append(folder / f"{key}.json")
    stamp = time.time() - 40 * DAY
    os.utime(records[0], (stamp, stamp))
    return records[0], records[1]


def test_the_scheduled_prune_removes_unused_entries_and_records_them(
        prefect_server, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.cache_flow import cache_prune

    runs = tmp_path / "runs"
    old, new = _cache_with_an_old_and_a_new_part(runs)
    old_bytes = old.stat().st_size + old.with_suffix(".parquet").stat().st_size
    summary = cache_prune(runs_dir=str(runs), unused_days=30)
    assert summary["removed_entries"] == 1 and summary["removed_bytes"] == old_bytes
    assert not old.exists() and not old.with_suffix(".parquet").exists()
    assert new.exists() and summary["kept"]["signals-parts"]["entries"] == 1
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[artifact_key(str(runs), "cache-prune")])))
    assert artifact.type == "table" and "signals-parts" in str(artifact.data)


def test_the_scheduled_prune_waits_for_a_running_stage(prefect_server, tmp_path: Path) -> None:
    from flows.cache_flow import cache_prune

    runs = tmp_path / "runs"
    old, _new = _cache_with_an_old_and_a_new_part(runs)
    held, release = threading.Event(), threading.Event()

    def stage() -> None:
        with cache_in_use(runs / ".cache"):
            held.set()
            release.wait(30)

    worker = threading.Thread(target=stage)
    worker.start()
    assert held.wait(10)
    threading.Timer(2.0, release.set).start()
    started = time.monotonic()
    summary = cache_prune(runs_dir=str(runs), unused_days=30, wait_minutes=1.0,
                          retry_every_minutes=0.05)
    worker.join()
    assert time.monotonic() - started >= 2.0  # it tried again after the stage ended
    assert summary["removed_entries"] == 1 and not old.exists()


def test_the_scheduled_prune_fails_with_the_reason_when_the_wait_runs_out(
        prefect_server, tmp_path: Path) -> None:
    from flows.cache_flow import cache_prune

    runs = tmp_path / "runs"
    old, _new = _cache_with_an_old_and_a_new_part(runs)
    with cache_in_use(runs / ".cache"):
        state = cache_prune(runs_dir=str(runs), unused_days=30, wait_minutes=0,
                            return_state=True)
    assert state.is_failed()
    assert "in use by a running stage" in str(state.result(raise_on_failure=False))
    assert old.exists()
