"""Issue 17, verify on read: what a rerun or another run reads back is checked against what
its manifest recorded; a changed, truncated or deleted part is recomputed, never reused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distill_core.audit import RunAudit
from distill_core.config import load_config
from distill_core.errors import ArtifactError
from distill_core.report import build_report

ROOT = Path(__file__).resolve().parent.parent


def _cfg(slice_dir: Path, method: str = "kmeans"):
    """Without the row cache, so that signals is kept whole in the stage cache these tests
    damage (the per-part cache's checks: tests/signals/test_part_cache.py)."""
    return load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0]",
                              "synthesize.per_class=3", f"synthesize.method={method}",
                              "run.name=integrity", "signals.row_cache=false"])


def _full_accuracy(store) -> float:
    rows = store.read("evaluate").to_pylist()
    return next(r["accuracy"] for r in rows if r["setting"] == "full")


def _shuffle_in_place(part: Path) -> None:
    table = pq.read_table(part)
    pq.write_table(table.take(list(reversed(range(table.num_rows)))), part)


@pytest.fixture(scope="module")
def pristine_runs(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory, run_stages):
    """One finished run and its cache, made once: each test damages its own copy."""
    runs = tmp_path_factory.mktemp("pristine-runs")
    store, _ = run_stages(_cfg(slice_dir), runs)
    return runs, store.root.name, _full_accuracy(store)


@pytest.fixture()
def first_run(pristine_runs, tmp_path: Path):
    """A copy of the pristine runs folder (run and cache) in this test's `tmp_path`."""
    from distill_core.artifacts.store import RunStore

    runs, run_id, accuracy = pristine_runs
    shutil.copytree(runs, tmp_path, dirs_exist_ok=True)
    store = RunStore.open(tmp_path / run_id)
    assert store.verify("filter") is None  # the copy is the run, as its manifests record it
    return store, accuracy


def test_rows_shuffled_in_a_run_folder_are_replaced_from_the_intact_cache(
        first_run, slice_dir: Path, tmp_path: Path, run_stages) -> None:
    store, accuracy = first_run
    _shuffle_in_place(store.parts("signals")[0])
    again, outcomes = run_stages(_cfg(slice_dir), tmp_path)
    status = {o.stage: o.status for o in outcomes}
    assert status["signals"] == "cached"  # not "resumed": the run's copy no longer verified
    assert "data/part-00000.parquet" in again.manifest("signals")["restored_because"]
    assert status["synthesize"] == "resumed" and _full_accuracy(again) == accuracy
    assert "redone: " in build_report(again.root)


def test_a_cache_entry_rewritten_in_place_is_not_reused_by_another_run(
        first_run, slice_dir: Path, tmp_path: Path, run_stages) -> None:
    store, accuracy = first_run
    fingerprint = store.manifest("signals")["fingerprint"]
    entry = tmp_path / ".cache" / "signals" / fingerprint
    _shuffle_in_place(entry / "data" / "part-00000.parquet")
    other, outcomes = run_stages(_cfg(slice_dir, "random"), tmp_path)
    status = {o.stage: o.status for o in outcomes}
    assert status["ingest"] == "cached" and status["signals"] == "computed"
    assert _full_accuracy(other) == accuracy  # 50.7 % instead of 82 % before the fix
    assert all(f["balanced"] for f in RunAudit(other.root).funnel())


def test_a_truncated_cached_ingest_part_is_recomputed(first_run, slice_dir: Path,
                                                       tmp_path: Path, run_stages) -> None:
    store, accuracy = first_run
    entry = tmp_path / ".cache" / "ingest" / store.manifest("ingest")["fingerprint"]
    part = entry / "data" / "part-00000.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    other, outcomes = run_stages(_cfg(slice_dir, "herding"), tmp_path)
    assert {o.stage: o.status for o in outcomes}["ingest"] == "computed"
    assert _full_accuracy(other) == accuracy


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_synthesize_part_is_recomputed_and_the_audit_says_so_first(
        first_run, slice_dir: Path, tmp_path: Path, run_stages, damage: str) -> None:
    store, accuracy = first_run
    part = store.parts("synthesize")[0]
    if damage == "truncate":
        part.write_bytes(part.read_bytes()[:100])
    else:
        part.unlink()
    funnel = RunAudit(store.root).funnel()
    synth = next(f for f in funnel if f["stage"] == "synthesize")
    assert not synth["verified"] and not synth["balanced"] and synth["problem"]
    again, outcomes = run_stages(_cfg(slice_dir), tmp_path)
    status = {o.stage: o.status for o in outcomes}
    assert status["synthesize"] == "computed" and status["filter"] == "resumed"
    assert again.manifest("synthesize")["recomputed_because"]
    assert _full_accuracy(again) == accuracy
    assert all(f["balanced"] and f.get("verified", True) for f in RunAudit(again.root).funnel())


def _rewrite_with_manifest(stage_dir: Path, part: Path) -> None:
    """Reorder a part's rows and record its new bytes in the stage's manifest, as a stage
    recomputed with the same fingerprint but other bytes would leave it: it verifies."""
    import hashlib

    _shuffle_in_place(part)
    manifest_path = stage_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    name = part.relative_to(stage_dir).as_posix()
    manifest["parts"][name] = {"bytes": part.stat().st_size,
                               "sha256": hashlib.sha256(part.read_bytes()).hexdigest()}
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")


def test_a_stage_made_from_other_upstream_bytes_is_neither_resumed_nor_restored(
        first_run, slice_dir: Path, tmp_path: Path, run_stages) -> None:
    from distill_core.pipeline.runner import artifact_input

    store, accuracy = first_run
    filter_parts = store.manifest("filter")["parts"]
    _rewrite_with_manifest(store.stage_dir("synthesize"), store.parts("synthesize")[0])
    assert store.verify("synthesize") is None  # same fingerprint, verifies, other bytes
    again, outcomes = run_stages(_cfg(slice_dir), tmp_path)
    status = {o.stage: o.status for o in outcomes}
    # filter, in the run, was made from the old bytes: not resumed (the cache's side of the
    # check: tests/artifacts/test_store.py)
    assert status["synthesize"] == "resumed" and status["filter"] == "computed"
    because = again.manifest("filter")["recomputed_because"]
    assert "made from other synthesize rows than this run's" in because
    recorded = again.manifest("filter")["inputs"]["synthesize"]["sha256"]
    assert recorded == artifact_input(again, "synthesize")["sha256"]
    # evaluate is resumed only if the new filter rows are the old bytes, and either way it
    # now records the filter stage the run holds
    same_filter = again.manifest("filter")["parts"] == filter_parts
    assert status["evaluate"] == ("resumed" if same_filter else "computed")
    assert (again.manifest("evaluate")["inputs"]["filter"]["sha256"]
            == artifact_input(again, "filter")["sha256"])
    assert _full_accuracy(again) == accuracy
    third, outcomes = run_stages(_cfg(slice_dir), tmp_path)
    assert {o.status for o in outcomes} == {"resumed"}


def test_audit_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a run folder"):
        RunAudit(tmp_path)
    shutil.rmtree(tmp_path)
    with pytest.raises(ArtifactError, match="run folder not found"):
        RunAudit(tmp_path)


def test_ingest_max_chars_from_the_config_rejects_long_texts(slice_dir: Path, tmp_path: Path,
                                                             run_stages) -> None:
    cfg = load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0]",
                             "synthesize.per_class=3", "ingest.max_chars=40"])
    store, _ = run_stages(cfg, tmp_path, until="ingest")
    reasons = store.read("ingest", rejects=True).column("reason").to_pylist()
    assert reasons.count("too_long") > 10
    assert max(len(t) for t in store.read("ingest").column("text").to_pylist()) <= 40
    default = load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0]"])
    assert "max_chars" not in {**default.ingest.model_dump(exclude_none=True)}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)


def test_audit_exits_nonzero_on_a_deleted_part_and_on_a_folder_that_is_not_a_run(
        first_run, tmp_path: Path) -> None:
    store, _ = first_run
    assert _cli("audit", str(store.root), "--json").returncode == 0
    store.parts("filter")[0].unlink()
    damaged = _cli("audit", str(store.root), "--json")
    assert damaged.returncode == 1
    payload = json.loads(damaged.stdout)
    assert payload["verified"] is False and "filter" in payload["problems"]
    text = _cli("audit", str(store.root))
    assert text.returncode == 1 and "data/part-00000.parquet is missing" in text.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in ("audit", "report"):
        result = _cli(command, str(empty))
        assert result.returncode == 2, result.stdout + result.stderr
        assert "not a run folder" in result.stderr and "Traceback" not in result.stderr
    assert list(empty.iterdir()) == []  # report wrote nothing into it


def test_an_eval_split_with_no_usable_row_stops_at_ingest_in_one_line(
        prefect_server, tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text("text,label\na warm film,pos\na dull film,neg\n", encoding="utf-8")
    evaluation = tmp_path / "eval.csv"
    evaluation.write_text("text,label\n,pos\n,neg\n", encoding="utf-8")  # every text empty
    config = tmp_path / "c.yaml"
    config.write_text(
        "data:\n  dataset: null\n"
        f"  train: {{file: {{path: {train}, text: text, label: label}}}}\n"
        f"  eval: {{file: {{path: {evaluation}, text: text, label: label}}}}\n",
        encoding="utf-8")
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    result = subprocess.run([sys.executable, "-m", "flows.cli", "run", str(config),
                             "--runs-dir", str(tmp_path / "runs")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "eval split has no usable rows" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
