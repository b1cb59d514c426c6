"""The run store on a real S3 API (moto in server mode on 127.0.0.1): parts under an attempt
prefix, the manifest written last names them, readers verify them; a writer killed mid-upload
leaves nothing a reader sees and its attempt is collected; two concurrent writers leave one
complete stage; the cross-run cache copies named parts; an fsspec URI works as well."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from distill_core.artifacts import stage_writer
from distill_core.artifacts.location import RemotePath
from distill_core.artifacts.store import RunStore
from distill_core.errors import ArtifactError
from tests.servers.s3 import S3Server

ROOT = Path(__file__).resolve().parents[2]
WRITER = str(Path(__file__).with_name("s3_writer.py"))


def _table(n: int = 3, tag: str = "a") -> pa.Table:
    return pa.table({"example_id": [f"{tag}{i}" for i in range(n)], "tag": [tag] * n})


def _writer(runs: str, fingerprint: str, tag: str, batches: int,
            go: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, WRITER, runs, "run-1", fingerprint, tag,
                             str(batches), *([str(go)] if go else [])], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_stage_is_published_by_its_manifest_and_verified_on_read(s3: S3Server) -> None:
    bucket = s3.bucket()
    store = RunStore(f"s3://{bucket}/runs", "run-1")
    assert store.remote and isinstance(store.root, RemotePath)
    store.write_stage("ingest", _table(), {"fingerprint": "f1", "finished_at": "t"},
                      rejects=_table(1, "r"))
    manifest = store.manifest("ingest")
    attempt = manifest["attempt"]
    prefix = f"runs/run-1/ingest/attempts/{attempt}"
    assert s3.keys(bucket) == [f"{prefix}/data/part-00000.parquet",
                               f"{prefix}/rejects/part-00000.parquet",
                               "runs/run-1/ingest/manifest.json"]
    assert manifest["files"] == ["data/part-00000.parquet", "rejects/part-00000.parquet"]
    assert store.is_complete("ingest", "f1") and not store.is_complete("ingest", "f2")
    assert store.read("ingest").equals(_table())
    assert store.read("ingest", rejects=True).num_rows == 1
    assert store.stages() == ["ingest"]
    assert str(store.data_dir("ingest")) == f"s3://{bucket}/{prefix}/data"

    # A part rewritten in place (another table of the same size class) no longer verifies.
    s3.client().put_object(Bucket=bucket, Key=f"{prefix}/data/part-00000.parquet",
                           Body=b"not the part")
    assert not store.is_complete("ingest", "f1") and "ingest" in store.invalid
    with pytest.raises(ArtifactError, match="bytes, the manifest recorded"):
        store.read("ingest")

    # A rewrite of the stage replaces it whole: the old attempt is deleted by the writer.
    store.write_stage("ingest", _table(5), {"fingerprint": "f2", "finished_at": "t2"})
    new = store.manifest("ingest")["attempt"]
    assert new != attempt and store.read("ingest").num_rows == 5
    assert not [k for k in s3.keys(bucket) if attempt in k]


def test_sigkill_during_upload_leaves_nothing_visible_and_the_rerun_collects_it(
        s3: S3Server) -> None:
    runs = f"s3://{s3.bucket()}/runs"
    bucket = runs.split("/")[2]
    writer = _writer(runs, "f1", "killed", batches=10_000)
    try:
        for line in writer.stdout:  # parts are being uploaded, one after the other
            if line.strip() == "part 3":
                break
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    uploaded = s3.keys(bucket, "runs/run-1/ingest/attempts/")
    assert len(uploaded) >= 3 and all("/data/part-" in k for k in uploaded), uploaded
    store = RunStore(runs, "run-1")
    assert store.manifest("ingest") is None and store.stages() == []
    assert not store.is_complete("ingest", "f1")
    with pytest.raises(ArtifactError, match="has the stage run"):
        store.read("ingest")

    # The rerun: its writer collects the dead writer's attempt, then publishes whole.
    store.write_stage("ingest", _table(), {"fingerprint": "f1", "finished_at": "t"})
    assert store.is_complete("ingest", "f1") and store.read("ingest").equals(_table())
    attempt = store.manifest("ingest")["attempt"]
    assert {k.split("/")[4] for k in s3.keys(bucket, "runs/run-1/ingest/attempts/")} == {
        attempt}


@pytest.mark.parametrize("same_config", [False, True])
def test_two_concurrent_writers_leave_one_complete_stage(s3: S3Server, tmp_path: Path,
                                                         same_config: bool) -> None:
    runs = f"s3://{s3.bucket()}/runs"
    go = tmp_path / "go"
    fingerprints = ("f1", "f1") if same_config else ("f1", "f2")
    writers = [_writer(runs, fp, tag, batches=6, go=go)
               for fp, tag in zip(fingerprints, ("one", "two"), strict=True)]
    time.sleep(1.0)  # both imported and waiting
    go.touch()
    results = [w.communicate(timeout=120) for w in writers]
    for writer, (out, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0 and "published" in out, err[-2000:]
    store = RunStore(runs, "run-1")
    manifest = store.manifest("ingest")
    assert store.verify("ingest") is None
    table = store.read("ingest")
    assert table.num_rows == 300 and len(set(table["tag"].to_pylist())) == 1  # one writer's
    assert manifest["fingerprint"] == ("f1" if same_config else
                                       {"one": "f1", "two": "f2"}[table["tag"][0].as_py()])
    store.collect_orphans()  # both writers are gone: only the named attempt is left
    bucket = runs.split("/")[2]
    assert {k.split("/")[4] for k in s3.keys(bucket, "runs/run-1/ingest/attempts/")} == {
        manifest["attempt"]}


def test_the_cache_copies_named_parts_and_drops_a_changed_entry(s3: S3Server) -> None:
    bucket = s3.bucket()
    runs = f"s3://{bucket}/runs"
    first = RunStore(runs, "run-1")
    first.write_stage("ingest", _table(4), {"fingerprint": "fp", "finished_at": "t"})
    first.save_to_cache("ingest")
    entry = first.cache_entry("ingest", "fp")
    assert entry is not None and str(entry) == f"{runs}/.cache/ingest/fp"
    assert s3.keys(bucket, "runs/.cache/ingest/fp/")[-1].endswith("/manifest.json")

    second = RunStore(runs, "run-2")
    assert second.restore_from_cache("ingest", "fp")
    manifest = second.manifest("ingest")
    assert manifest["cache"] == {"hit": True, "from_run": "run-1"}
    assert manifest["run_id"] == "run-2" and second.read("ingest").equals(_table(4))
    assert manifest["attempt"] != first.manifest("ingest")["attempt"]  # copies, not shared

    cached = s3.keys(bucket, "runs/.cache/ingest/fp/attempts/")
    s3.client().put_object(Bucket=bucket, Key=cached[0], Body=b"changed")
    third = RunStore(runs, "run-3")
    assert not third.restore_from_cache("ingest", "fp")
    assert "cache entry" in third.invalid["ingest"]
    assert s3.keys(bucket, "runs/.cache/ingest/fp/") == []  # dropped: recomputed next time


def test_an_fsspec_filesystem_works_as_a_runs_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage_writer, "ROWS_PER_PART", 2)
    store = RunStore("memory://textdistill-test/runs", "run-1")
    writer = store.stage_writer("ingest")
    writer.write(_table(5))
    assert store.manifest("ingest") is None
    writer.publish({"fingerprint": "f", "finished_at": "t"})
    assert len(store.parts("ingest")) == 3 and store.read("ingest").equals(_table(5))
    assert store.is_complete("ingest", "f")


def test_a_same_fingerprint_manifest_from_other_inputs_replaces_the_stage(s3: S3Server) -> None:
    bucket = s3.bucket()
    store = RunStore(f"s3://{bucket}/runs", "run-1")
    old = {"fingerprint": "fp", "finished_at": "t", "inputs": {"ingest": {"sha256": "old"}}}
    store.write_stage("signals", _table(3), old)
    store.write_stage("signals", _table(5, "b"), {**old, "finished_at": "t2"})
    assert store.read("signals").equals(_table(3))  # the same stage: the first copy stays
    first = store.manifest("signals")["attempt"]
    store.write_stage("signals", _table(5, "b"),
                      {**old, "inputs": {"ingest": {"sha256": "new"}}})
    assert store.read("signals").equals(_table(5, "b"))  # other inputs: replaced
    assert not [k for k in s3.keys(bucket) if first in k]
