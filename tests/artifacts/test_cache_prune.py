"""Issue 19: `textdistill cache show|prune` on a runs folder filled by real runs (a folder of
daily SST-2 files through ingest and signals, with the per-file, per-part and per-text
caches). Pruning removes what runs did not write or reuse for the given days, then the least
recently used down to a size, never what a running stage holds (shared lock) nor a teacher
model a run reads; a run after a prune computes again what went, and gets the same vectors.
Expected failures are one line and exit 2 through a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from distill_core.artifacts import stage_writer
from distill_core.artifacts.cache_prune import (
    LOCK,
    cache_entries,
    leftovers,
    prune,
)
from distill_core.artifacts.cache_use import cache_exclusive, cache_in_use
from distill_core.signals.embeddings import matrix
from tests.signals.test_part_cache import _config, _days_one_and_two

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400.0


def _age(path: Path, days: float) -> None:
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))


def _files_bytes(folder: Path) -> int:
    """Every file's bytes under the cache but the lock and the row cache's settings notes."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()
               and p.name not in (LOCK, "settings.json"))


@pytest.fixture()
def two_days(slice_dir: Path, tmp_path: Path, run_stages, monkeypatch: pytest.MonkeyPatch):
    """Days 1-2 of the daily folder run through signals, in parts of 40 rows (so a grown
    folder's run finds some of them): (data, runs, days, store)."""
    monkeypatch.setattr(stage_writer, "ROWS_PER_PART", 40)
    return _days_one_and_two(slice_dir, tmp_path, run_stages)


def test_show_accounts_for_every_byte_of_a_real_cache(two_days) -> None:
    _data, runs, _days_, _store = two_days
    entries = cache_entries(runs / ".cache")
    kinds = {e.kind for e in entries}
    assert {"ingest", "ingest-files", "rows", "signals-parts"} <= kinds, kinds
    assert not leftovers(runs / ".cache")
    assert sum(e.bytes for e in entries) == _files_bytes(runs / ".cache")
    assert all(time.time() - e.last_used < 3600 for e in entries)
    result = subprocess.run([sys.executable, "-m", "flows.cli", "cache", "show", "--runs-dir",
                             str(runs), "--json"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    import json

    shown = json.loads(result.stdout)
    assert shown["total"]["entries"] == len(entries)
    assert shown["total"]["bytes"] == sum(e.bytes for e in entries)
    assert set(shown["kinds"]) == kinds


def test_prune_by_age_removes_only_old_entries_and_a_rerun_computes_them_again(
        two_days, tmp_path: Path, run_stages) -> None:
    data, runs, _days_, first = two_days
    cache = runs / ".cache"
    old = [e for e in cache_entries(cache) if e.kind in ("rows", "signals-parts", "ingest")]
    for entry in old:
        _age(entry.path, 40)
    fresh = [e for e in cache_entries(cache) if e.kind not in ("rows", "signals-parts",
                                                                "ingest")]
    assert fresh
    dry = prune(runs, unused_days=30, max_bytes=None, dry_run=True)
    assert {e.path for e in dry.remove} == {e.path for e in old}
    assert all(e.path.exists() for e in old)  # a dry run removes nothing

    plan = prune(runs, unused_days=30, max_bytes=None)
    assert {e.path for e in plan.remove} == {e.path for e in old}
    assert not any(e.path.exists() for e in old)
    assert {e.path for e in cache_entries(cache)} == {e.path for e in fresh}

    again, _ = run_stages(_config(data, tmp_path / "b.yaml", "run.name=after-prune"), runs,
                          until="signals")
    extra = again.manifest("signals")
    assert extra["part_cache"]["parts_reused"] == 0
    assert extra["rows_reused"] == 0 and extra["rows_computed"] > 0
    np.testing.assert_allclose(matrix(again.read("signals")), matrix(first.read("signals")),
                               atol=1e-6)


def test_a_rerun_over_a_grown_folder_marks_what_it_reused(two_days, tmp_path: Path,
                                                          run_stages) -> None:
    data, runs, days, _first = two_days
    cache = runs / ".cache"
    for entry in cache_entries(cache):
        _age(entry.path, 40)
    before = {e.path for e in cache_entries(cache)}
    (data / "daily" / "day-3.tsv").write_bytes(days[2])
    grown, _ = run_stages(_config(data, tmp_path / "b.yaml", "run.name=grown"), runs,
                          until="signals")
    reused_parts = grown.manifest("signals")["part_cache"]["parts_reused"]
    assert reused_parts > 0

    plan = prune(runs, unused_days=30, max_bytes=None, dry_run=True)
    kept_old = [e.kind for e in plan.keep if e.path in before]
    assert kept_old.count("signals-parts") == reused_parts
    assert kept_old.count("ingest-files") == 2  # days 1 and 2, read back, not parsed
    rows = grown.manifest("signals")["row_cache"]
    assert rows["rows_reused"] > 0 and kept_old.count("rows") >= 1  # parts that served them
    assert set(kept_old) == {"signals-parts", "ingest-files", "rows"}
    # The first run's ingest copy (another fingerprint now), and the signals and row-cache
    # parts of rows that no longer sit in the same part, went unused.
    assert all(e.path in before for e in plan.remove)
    assert {e.kind for e in plan.remove} == {"ingest", "rows", "signals-parts"}


def test_max_size_removes_the_least_recently_used_first(two_days) -> None:
    _data, runs, _days_, _store = two_days
    cache = runs / ".cache"
    entries = cache_entries(cache)
    for rank, entry in enumerate(entries):  # the first listed is the least recently used
        _age(entry.path, 10 - rank * 0.1)
    entries = sorted(cache_entries(cache), key=lambda e: e.last_used)
    total = sum(e.bytes for e in entries)
    cap = total - entries[0].bytes - entries[1].bytes
    plan = prune(runs, unused_days=None, max_bytes=cap, dry_run=True)
    assert [e.path for e in plan.remove] == [entries[0].path, entries[1].path]
    assert plan.fits and plan.kept_bytes == cap

    plan = prune(runs, unused_days=None, max_bytes=cap - 1)
    assert [e.path for e in sorted(plan.remove, key=lambda e: e.last_used)] == [
        e.path for e in entries[:3]]
    assert sum(e.bytes for e in cache_entries(cache)) <= cap - 1


def test_teacher_models_that_runs_read_are_kept(tmp_path: Path) -> None:
    """A fine-tuned teacher (`teacher_model/<fp[:16]>`) stays while a run folder's teacher
    stage or a kept teacher cache entry has its fingerprint; an unreferenced one goes."""
    runs = tmp_path / "runs"
    cache = runs / ".cache"
    read_by_run, read_by_entry, unread = "a" * 64, "b" * 64, "c" * 64
    for fp in (read_by_run, read_by_entry, unread):
        model = cache / "teacher_model" / fp[:16]
        model.mkdir(parents=True)
        (model / "model.safetensors").write_bytes(b"\0" * 1000)
        _age(model, 90)
    (runs / "run-1" / "teacher").mkdir(parents=True)
    (runs / "run-1" / "teacher" / "manifest.json").write_text(
        f'{{"fingerprint": "{read_by_run}"}}')
    entry = cache / "teacher" / read_by_entry
    entry.mkdir(parents=True)
    (entry / "manifest.json").write_text(f'{{"fingerprint": "{read_by_entry}"}}')

    plan = prune(runs, unused_days=30, max_bytes=0, dry_run=True)
    # The teacher entry goes (size 0 asked), so its model is read by no one and goes too.
    assert {e.path.name for e in plan.remove} == {read_by_entry, read_by_entry[:16],
                                                   unread[:16]}
    assert [e.path.name for e in plan.pinned] == [read_by_run[:16]]
    assert not plan.fits

    plan = prune(runs, unused_days=30, max_bytes=None)
    assert {e.path.name for e in plan.remove} == {unread[:16]}  # the entry is fresh
    assert (cache / "teacher_model" / read_by_entry[:16]).is_dir()
    assert (cache / "teacher_model" / read_by_run[:16]).is_dir()


def test_prune_removes_leftovers_of_interrupted_writers_only(two_days) -> None:
    _data, runs, _days_, _store = two_days
    cache = runs / ".cache"
    entries = cache_entries(cache)
    setting = next(p for p in (cache / "rows").iterdir() if p.is_dir())
    left = [cache / "signals-parts" / ".abc.parquet.tmp-1-x-host",
            setting / "part-20260101T000000000000-deadbeef.parquet",
            cache / "ingest" / ".0123.tmp-1-x-host"]
    left[2].mkdir()
    (left[2] / "part-00000.parquet").write_bytes(b"x" * 10)
    for path in left[:2]:
        path.write_bytes(b"x" * 100)
    assert sorted(leftovers(cache)) == sorted(left)
    plan = prune(runs, unused_days=1000, max_bytes=None)
    assert not plan.remove and plan.leftover_bytes == 210
    assert not any(p.exists() for p in left)
    assert {e.path for e in cache_entries(cache)} == {e.path for e in entries}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", "cache", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    out = (result.stdout + result.stderr).strip()
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    for word in words:
        assert word in out, out


def test_prune_refuses_while_a_stage_holds_the_cache_and_a_stage_waits_for_prune(
        tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    stale = runs / ".cache" / "signals-parts" / "k.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    _age(stale, 100)
    with cache_in_use(runs / ".cache"):
        _one_line_error(_cli("prune", "--runs-dir", str(runs), "--unused-days", "1"),
                        "in use by a running stage", str(runs / ".cache"))
    assert stale.exists()
    result = _cli("prune", "--runs-dir", str(runs), "--unused-days", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not stale.exists() and "removed 1 entries" in result.stdout

    entered = threading.Event()

    def stage() -> None:
        with cache_in_use(runs / ".cache"):
            entered.set()

    with cache_exclusive(runs / ".cache"):
        worker = threading.Thread(target=stage)
        worker.start()
        assert not entered.wait(1.0)  # the stage waits while prune holds the cache
    assert entered.wait(10.0)
    worker.join()


@pytest.mark.parametrize(("args", "words"), [
    (("prune",), ("--unused-days", "--max-size")),
    (("prune", "--max-size", "12XB"), ("12XB", "not a size")),
    (("prune", "--unused-days", "-1"), ("-1",)),
    (("show", "--runs-dir", "s3://bucket/runs"), ("s3://bucket/runs", "lifecycle")),
    (("show", "--runs-dir", "no-such-folder"), ("no-such-folder",)),
])
def test_cache_command_errors_are_one_line(tmp_path: Path, args: tuple[str, ...],
                                           words: tuple[str, ...]) -> None:
    if "--runs-dir" not in args:
        (tmp_path / "runs").mkdir()
        args = (*args, "--runs-dir", str(tmp_path / "runs"))
    _one_line_error(_cli(*args), *words)
