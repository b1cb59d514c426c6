"""Atomic stage writes, fingerprints, the cross-run cache."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from distill_core.artifacts import store as store_module
from distill_core.artifacts.store import RunStore


def _table(n: int = 3) -> pa.Table:
    return pa.table({"example_id": [f"e{i}" for i in range(n)]})


def test_write_then_read_with_manifest(tmp_path: Path) -> None:
    store = RunStore(tmp_path, "run-1")
    store.write_stage("ingest", _table(), {"fingerprint": "f1", "finished_at": "t"},
                      rejects=_table(1))
    assert store.is_complete("ingest", "f1") and not store.is_complete("ingest", "f2")
    assert store.read("ingest").num_rows == 3 and store.read("ingest", rejects=True).num_rows == 1
    manifest = store.manifest("ingest")
    assert manifest["run_id"] == "run-1"
    assert manifest["files"] == ["part-00000.parquet", "rejects/part-00000.parquet"]
    assert [p.name for p in (tmp_path / "run-1").iterdir()] == ["ingest"]


def test_a_crash_mid_write_leaves_no_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    store = RunStore(tmp_path, "run-1")

    def explode(folder: Path, table: pa.Table) -> list[str]:
        (folder / "part-00000.parquet").parent.mkdir(parents=True, exist_ok=True)
        (folder / "part-00000.parquet").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "_write_parts", explode)
    with pytest.raises(OSError):
        store.write_stage("ingest", _table(), {"fingerprint": "f1", "finished_at": "t"})
    assert store.manifest("ingest") is None
    assert list((tmp_path / "run-1").iterdir()) == []


def test_rewrite_replaces_the_stage_whole(tmp_path: Path) -> None:
    store = RunStore(tmp_path, "run-1")
    store.write_stage("filter", _table(5), {"fingerprint": "old", "finished_at": "t"})
    store.write_stage("filter", _table(2), {"fingerprint": "new", "finished_at": "t"})
    assert store.read("filter").num_rows == 2 and store.is_complete("filter", "new")
    assert sorted(p.name for p in (tmp_path / "run-1").iterdir()) == ["filter"]


def test_cache_links_a_stage_into_another_run(tmp_path: Path) -> None:
    first = RunStore(tmp_path, "run-a")
    first.write_stage("signals", _table(), {"fingerprint": "fp", "finished_at": "t"})
    first.save_to_cache("signals")
    second = RunStore(tmp_path, "run-b")
    assert not second.restore_from_cache("signals", "other")
    assert second.restore_from_cache("signals", "fp")
    manifest = second.manifest("signals")
    assert manifest["cache"] == {"hit": True, "from_run": "run-a"}
    assert manifest["run_id"] == "run-b"
    a = first.parts("signals")[0]
    b = second.parts("signals")[0]
    assert os.stat(a).st_ino == os.stat(b).st_ino  # a hard link, not a copy
    assert first.manifest("signals")["run_id"] == "run-a"  # the original is untouched
