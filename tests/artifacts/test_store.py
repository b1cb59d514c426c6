"""Atomic stage writes, fingerprints, the cross-run cache."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from distill_core.artifacts import stage_writer
from distill_core.artifacts import store as store_module
from distill_core.artifacts.store import RunStore
from distill_core.errors import ArtifactError


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
    assert manifest["files"] == ["data/part-00000.parquet", "rejects/part-00000.parquet"]
    assert sorted(p.name for p in store.stage_dir("ingest").iterdir()) == [
        "data", "manifest.json", "rejects"]
    assert [p.name for p in (tmp_path / "run-1").iterdir()] == ["ingest"]


def test_a_crash_mid_write_leaves_no_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    store = RunStore(tmp_path, "run-1")

    real_roll = stage_writer.StageWriter._roll

    def explode(self: stage_writer.StageWriter, kind: str) -> None:
        real_roll(self, kind)
        (self.tmp / kind / "part-00000.parquet").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(stage_writer.StageWriter, "_roll", explode)
    with pytest.raises(OSError):
        store.write_stage("ingest", _table(), {"fingerprint": "f1", "finished_at": "t"})
    assert store.manifest("ingest") is None
    assert list((tmp_path / "run-1").iterdir()) == []


def test_a_streamed_stage_rolls_parts_and_is_invisible_until_published(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage_writer, "ROWS_PER_PART", 4)
    store = RunStore(tmp_path, "run-1")
    writer = store.stage_writer("ingest")
    for start in (0, 3, 6):
        writer.write(_table(3).set_column(0, "x", pa.array(range(start, start + 3))))
    writer.write(_table(2), rejects=True)
    assert store.manifest("ingest") is None  # not published: readers see nothing
    writer.publish({"fingerprint": "f1", "finished_at": "t"})
    manifest = store.manifest("ingest")
    assert [n for n in manifest["files"]] == ["data/part-00000.parquet", "data/part-00001.parquet",
                                              "data/part-00002.parquet",
                                              "rejects/part-00000.parquet"]
    assert store.read("ingest").column("x").to_pylist() == list(range(9))
    assert store.read("ingest", rejects=True).num_rows == 2


def test_a_batch_with_another_schema_is_refused(tmp_path: Path) -> None:
    writer = RunStore(tmp_path, "run-1").stage_writer("ingest")
    writer.write(_table(2))
    with pytest.raises(ArtifactError, match="another schema"):
        writer.write(pa.table({"other": [1]}))
    writer.abort()
    assert [p.name for p in (tmp_path / "run-1").iterdir()] == []


def test_rewrite_replaces_the_stage_whole(tmp_path: Path) -> None:
    store = RunStore(tmp_path, "run-1")
    store.write_stage("filter", _table(5), {"fingerprint": "old", "finished_at": "t"})
    store.write_stage("filter", _table(2), {"fingerprint": "new", "finished_at": "t"})
    assert store.read("filter").num_rows == 2 and store.is_complete("filter", "new")
    assert sorted(p.name for p in (tmp_path / "run-1").iterdir()) == ["filter"]


def test_cache_copies_a_stage_into_another_run(tmp_path: Path) -> None:
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
    assert os.stat(a).st_ino != os.stat(b).st_ino  # a copy: editing one run cannot touch another
    assert a.read_bytes() == b.read_bytes()
    assert first.manifest("signals")["run_id"] == "run-a"  # the original is untouched


def _rewrite_in_place(part: Path) -> None:
    """The same rows in another order, written over the part (what a careless user does)."""
    import pyarrow.parquet as pq

    table = pq.read_table(part)
    pq.write_table(table.take(list(reversed(range(table.num_rows)))), part)


def test_a_part_rewritten_in_place_is_no_longer_complete_nor_readable(tmp_path: Path) -> None:
    from distill_core.errors import ArtifactError

    store = RunStore(tmp_path, "run-1")
    store.write_stage("signals", _table(5), {"fingerprint": "fp", "finished_at": "t"})
    record = store.manifest("signals")["parts"]["data/part-00000.parquet"]
    assert record["bytes"] > 0 and len(record["sha256"]) == 64
    assert store.is_complete("signals", "fp")
    _rewrite_in_place(store.parts("signals")[0])
    assert not store.is_complete("signals", "fp")
    assert "sha256 differs" in store.invalid["signals"]
    with pytest.raises(ArtifactError, match="rerun the command to recompute"):
        store.read("signals")
    store.parts("signals")[0].unlink()
    assert store.verify("signals") == "part data/part-00000.parquet is missing"


def test_a_changed_cache_entry_is_dropped_not_restored(tmp_path: Path) -> None:
    first = RunStore(tmp_path, "run-a")
    first.write_stage("ingest", _table(4), {"fingerprint": "fp", "finished_at": "t"})
    first.save_to_cache("ingest")
    entry = tmp_path / ".cache" / "ingest" / "fp"
    part = entry / "data" / "part-00000.parquet"
    part.write_bytes(part.read_bytes()[:20])  # truncated
    second = RunStore(tmp_path, "run-b")
    assert not second.restore_from_cache("ingest", "fp")
    assert "cache entry" in second.invalid["ingest"] and not entry.exists()
    assert first.cache_entry("ingest", "fp") is None
    first.save_to_cache("ingest")  # the intact run copy re-seeds the cache
    assert first.cache_entry("ingest", "fp") == entry
    assert second.restore_from_cache("ingest", "fp") and second.read("ingest").num_rows == 4


def test_a_manifest_that_is_not_json_is_a_clear_error(tmp_path: Path) -> None:
    from distill_core.errors import ArtifactError

    store = RunStore(tmp_path, "run-1")
    store.write_stage("filter", _table(), {"fingerprint": "fp", "finished_at": "t"})
    (store.stage_dir("filter") / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match="delete the folder .*filter"):
        store.manifest("filter")


def test_orphans_of_dead_writers_are_collected_and_live_ones_kept(tmp_path: Path) -> None:
    store = RunStore(tmp_path, "run-1")
    store.write_stage("ingest", _table(), {"fingerprint": "fp", "finished_at": "t"})
    store.save_to_cache("ingest")
    host = store_module._HOST
    gone_pid = 2**22 + 17  # above the kernel's default pid_max: never a live process
    orphans = [store.root / f".signals.tmp-{gone_pid}-abc-{host}",
               store.root / f".filter.stale-{gone_pid}-def-{host}",
               tmp_path / ".cache" / "ingest" / f".fp.tmp-{gone_pid}-123-{host}"]
    live = store.root / f".teacher.tmp-{os.getpid()}-xyz-{host}"
    other_host = store.root / f".signals.tmp-{gone_pid}-abc-elsewhere"
    for folder in orphans + [live, other_host]:
        folder.mkdir(parents=True)
    removed = store.collect_orphans()
    assert sorted(removed) == sorted(orphans)
    assert live.exists() and other_host.exists()


@pytest.fixture()
def ingested(slice_dir: Path, tmp_path: Path, run_stages):
    """A real ingest stage of an SST-2 slice: (config, store)."""
    from distill_core.config import load_config

    cfg = load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0]",
                             "run.name=layout"])
    store, _ = run_stages(cfg, tmp_path / "runs", until="ingest")
    return cfg, store


def test_a_stage_folder_is_read_directly_by_pandas_duckdb_and_datasets(
        ingested, tmp_path: Path) -> None:
    import datasets
    import duckdb
    import pandas as pd

    _, store = ingested
    rows = store.read("ingest")
    data = store.stage_dir("ingest") / "data"
    assert store.data_dir("ingest") == data
    frame = pd.read_parquet(data)
    assert len(frame) == rows.num_rows > 100
    assert sorted(frame["example_id"]) == sorted(rows.column("example_id").to_pylist())
    counted = duckdb.connect().execute(
        f"SELECT count(*) FROM read_parquet('{data}/*.parquet')").fetchall()
    assert counted == [(rows.num_rows,)]
    loaded = datasets.load_dataset("parquet", data_dir=str(data), split="train",
                                   cache_dir=str(tmp_path / "hf"))
    assert loaded.num_rows == rows.num_rows and "text" in loaded.column_names
    rejects = pd.read_parquet(store.stage_dir("ingest") / "rejects")
    assert len(rejects) == store.read("ingest", rejects=True).num_rows


def _to_old_layout(folder: Path) -> None:
    """Rewrite a stage folder as the previous version laid it out: parts beside the manifest."""
    import json

    for part in (folder / "data").iterdir():
        part.rename(folder / part.name)
    (folder / "data").rmdir()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    files = [n.removeprefix("data/") for n in manifest["files"]]
    manifest.update(files=files, parts=store_module.part_records(folder, files))
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_stage_in_the_old_layout_is_recomputed_cleanly(ingested, tmp_path: Path,
                                                         run_stages) -> None:
    from distill_core.audit import RunAudit
    from distill_core.pipeline.plan import plan_run

    cfg, store = ingested
    fingerprint = store.manifest("ingest")["fingerprint"]
    _to_old_layout(store.stage_dir("ingest"))
    _to_old_layout(tmp_path / "runs" / ".cache" / "ingest" / fingerprint)
    assert "older version" in (store.verify("ingest") or "")
    assert not RunAudit(store.root).funnel()[0]["verified"]  # reported, not read, no crash
    planned = next(p for p in plan_run(cfg, tmp_path / "runs") if p.name == "ingest")
    assert planned.status == "compute" and "older version" in planned.note
    again, outcomes = run_stages(cfg, tmp_path / "runs", until="ingest")
    assert [o.status for o in outcomes] == ["computed"]
    assert "older version" in again.manifest("ingest")["recomputed_because"]
    assert not list(again.stage_dir("ingest").glob("*.parquet"))  # nothing left at the top
    assert again.read("ingest").num_rows == again.manifest("ingest")["counts"]["rows_out"]
    assert store.cache_entry("ingest", fingerprint) is not None  # the cache is re-seeded


def test_a_parts_bytes_follow_its_rows_not_the_batches_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed row groups: the same 23 rows written in other batches give the same parts, byte
    for byte (what lets a rerun's parts be matched to an earlier run's by sha256)."""
    from distill_core.artifacts import layout

    monkeypatch.setattr(stage_writer, "ROWS_PER_PART", 10)
    monkeypatch.setattr(layout, "TABLE_GROUP_ROWS", 4)
    rows = pa.table({"x": list(range(23)), "t": [f"row {i}" for i in range(23)]})

    def parts(name: str, cuts: list[int]) -> dict:
        writer = RunStore(tmp_path, name).stage_writer("ingest")
        for start, end in zip([0, *cuts], [*cuts, 23], strict=True):
            writer.write(rows.slice(start, end - start))
        writer.publish({"fingerprint": "f", "finished_at": "t"})
        return RunStore(tmp_path, name).manifest("ingest")["parts"]

    one = parts("a", [])
    assert parts("b", [1, 2, 9, 17]) == one and parts("c", [11]) == one
    assert len(one) == 3
    meta = pa.parquet.ParquetFile(RunStore(tmp_path, "b").parts("ingest")[0]).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [4, 4, 2]


def test_end_part_and_adopt_take_in_a_checked_copy(tmp_path: Path) -> None:
    first = RunStore(tmp_path, "run-a").stage_writer("signals")
    first.write(_table(3))
    made = first.end_part()
    assert [p.name for p in made] == ["part-00000.parquet"] and first.end_part() == []
    first.write(_table(2))
    first.publish({"fingerprint": "f", "finished_at": "t"})
    source = RunStore(tmp_path, "run-a").parts("signals")[0]
    record = RunStore(tmp_path, "run-a").manifest("signals")["parts"]["data/part-00000.parquet"]

    writer = RunStore(tmp_path, "run-b").stage_writer("signals")
    writer.write(_table(1))
    wrong = {**record, "sha256": "0" * 64}
    assert "sha256" in writer.adopt(source, wrong)  # refused: nothing kept
    assert writer.adopt(source, record) is None
    writer.write(_table(4))
    writer.publish({"fingerprint": "f", "finished_at": "t"})
    store = RunStore(tmp_path, "run-b")
    manifest = store.manifest("signals")
    assert manifest["files"] == [f"data/part-0000{i}.parquet" for i in range(3)]
    assert manifest["parts"]["data/part-00001.parquet"] == record
    assert store.read("signals").column("example_id").to_pylist() == [
        "e0", "e0", "e1", "e2", "e0", "e1", "e2", "e3"]
    assert store.verify("signals") is None


def test_a_copy_made_from_other_inputs_is_replaced_and_not_restored(tmp_path: Path) -> None:
    """Same fingerprint, other recorded inputs: publishing replaces the copy there (an equal
    copy from a concurrent writer is kept), and the cache refuses, and drops, an entry that
    an inputs check rejects."""
    from distill_core.pipeline.runner import InputsCheck

    store = RunStore(tmp_path, "run-1")
    old = {"fingerprint": "fp", "finished_at": "t", "inputs": {"ingest": {"sha256": "old"}}}
    store.write_stage("signals", _table(3), old)
    store.write_stage("signals", _table(5), {**old, "finished_at": "t2"})  # same: kept
    assert store.read("signals").num_rows == 3
    store.write_stage("signals", _table(5), {**old, "inputs": {"ingest": {"sha256": "new"}}})
    assert store.read("signals").num_rows == 5  # made from other inputs: replaced
    store.save_to_cache("signals")

    def wants(sha: str) -> InputsCheck:
        return lambda m: None if m["inputs"]["ingest"]["sha256"] == sha else "other ingest"

    other = RunStore(tmp_path, "run-2")
    assert not other.restore_from_cache("signals", "fp", wants("old"))
    assert other.invalid["signals"].endswith("other ingest")
    assert not (tmp_path / ".cache" / "signals" / "fp").exists()  # dropped: computed again
    assert other.manifest("signals") is None
