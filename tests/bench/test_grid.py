"""The benchmark grid end to end on a pair task (MRPC slices): scores, metrics, report, and a
grid killed with SIGKILL mid-way that resumes to the same table without rescoring a cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from distill_core.bench.cells import FULL, RunData
from distill_core.bench.config import BenchConfig, load_bench_config
from distill_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
COMPARED = ["key", "dataset", "method", "per_class", "learner", "labels", "seed", "replicate",
            "n_train", "n_eval", "accuracy", "macro_f1"]


def _config(slice_dir: Path) -> dict:
    return {"name": "pairs", "datasets": ["mrpc"], "data_dir": str(slice_dir),
            "budgets": [2, 4], "methods": ["random", "kmeans"], "seeds": [0, 1],
            "learners": [{"kind": "linear_probe"},
                         {"kind": "finetune", "steps": 2, "batch_size": 8, "max_length": 64,
                          "seeds": [0], "methods": ["kmeans"], "budgets": [2],
                          "full_seeds": 0}]}


def _env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PYTHONPATH": str(ROOT)}


def _bench_cli(config_file: Path, runs: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", "bench", str(config_file),
                           "--runs-dir", str(runs), *extra], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def finished(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory, prefect_server) -> dict:
    from flows.benchmark import benchmark

    runs = tmp_path_factory.mktemp("bench-a")
    return benchmark(_config(slice_dir), str(runs))


def test_pair_grid_scores_every_cell_with_pair_features(finished: dict) -> None:
    from sklearn.linear_model import LogisticRegression

    scores = pq.read_table(Path(finished["dir"]) / "scores.parquet").to_pylist()
    # linear probe: 2 methods x 2 budgets x 2 seeds + full; fine-tune: kmeans at 2/class, 1 seed
    assert len(scores) == finished["cells"] == 10
    assert {r["n_eval"] for r in scores} == {20}  # the MRPC dev slice
    full = next(r for r in scores if r["method"] == FULL)
    data = RunData(full["run_dir"])
    assert data.train_x.shape[1] == 4 * 384  # [u, v, |u-v|, u*v]
    reference = LogisticRegression(max_iter=2000).fit(data.train_x, data.train.column(
        "label_id").to_numpy())
    expected = float((reference.predict(data.evaluation.x) == data.evaluation.y).mean())
    assert full["accuracy"] == pytest.approx(expected)
    tuned = [r for r in scores if r["learner"] == "finetune"]
    assert len(tuned) == 1 and tuned[0]["n_train"] == 4
    cell_rows = [r for r in scores if r["learner"] == "finetune"][0]
    from distill_core.bench.cells import Cell

    train = data.training_set(Cell(**{k: cell_rows[k] for k in (
        "dataset", "method", "per_class", "learner", "seed", "replicate", "labels", "run_dir",
        "key")})).data
    assert train.pairs is not None and len(train.pairs) == 4  # the tokenizer's pair input
    assert all(r["peak_rss_mb"] > 0 and r["wall_time_s"] > 0 for r in scores)


def test_report_has_tables_best_marked_plots_and_html(finished: dict) -> None:
    folder = Path(finished["dir"])
    report = (folder / "report.md").read_text()
    assert "## mrpc — linear_probe (hard labels)" in report and "**" in report
    assert "full data (40 rows)" in report and "retention %" in report
    pngs = sorted((folder / "plots").glob("*.png"))
    assert [p.name for p in pngs] == ["mrpc-finetune-hard.png", "mrpc-linear_probe-hard.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    page = (folder / "report.html").read_text()
    assert page.count("<img ") == 2 and "<b>" in page
    from distill_core.bench.grid import rebuild_report

    for png in pngs:
        png.unlink()
    (folder / "report.md").unlink()
    assert rebuild_report(folder).read_text() == report  # `textdistill report BENCH_DIR`
    assert all(p.is_file() for p in pngs)
    manifest = json.loads((folder / "bench.json").read_text())
    assert manifest["seeds"] == [0, 1] and manifest["versions"]["torch"]
    assert all(fp["filter"] for fp in manifest["inputs"].values())


def test_a_killed_grid_resumes_to_the_same_table(finished: dict, slice_dir: Path,
                                                 tmp_path: Path) -> None:
    config_file = tmp_path / "bench.yaml"
    config_file.write_text(yaml.safe_dump(_config(slice_dir)))
    runs = tmp_path / "runs"
    killed = _bench_cli(config_file, runs, "--set", "faults.kill_after_cells=3")
    assert killed.returncode == -9, killed.stderr[-2000:]
    folder = runs / BenchConfig.model_validate(_config(slice_dir)).bench_id()
    cells_dir = folder / "cells"
    saved = sorted(cells_dir.glob("*.json"))
    assert len(saved) == 3
    assert not list(cells_dir.glob(".*tmp*"))
    # A saved cell edited afterwards (valid JSON, another score) and a truncated one are not
    # reused: both are scored again, and the table below is the uninterrupted grid's.
    edited = json.loads(saved[0].read_text())
    edited["accuracy"] = 0.999
    saved[0].write_text(json.dumps(edited))
    saved[1].write_text(saved[1].read_text()[:20])
    resumed = _bench_cli(config_file, runs)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "10 cells, 9 scored now" in " ".join(resumed.stdout.split())
    from flows.benchmark import benchmark

    assert benchmark(_config(slice_dir), str(runs))["cells_scored"] == 0  # nothing rescored
    table = pq.read_table(folder / "scores.parquet").select(COMPARED)
    expected = pq.read_table(Path(finished["dir"]) / "scores.parquet").select(COMPARED)
    assert table.to_pylist() == expected.to_pylist()


def test_bench_config_rejects_learner_seeds_outside_the_grid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [0, 1]\nlearners: [{kind: finetune, seeds: [0, 7]}]\n")
    with pytest.raises(ConfigError, match=r"seeds \[7\] are not among"):
        load_bench_config(bad)
    with pytest.raises(ConfigError, match="learners.0.kind"):
        load_bench_config(bad, ["learners=[{kind: svm}]"])
    cfg = BenchConfig(datasets=["sst2"], methods=["kmeans"], budgets=[5])
    assert cfg.run_config("sst2", "kmeans", 5).synthesize.per_class == 5
    assert np.array_equal(cfg.seeds, [0, 1, 2, 3, 4])


def test_auto_runs_are_told_the_learners_their_sets_train() -> None:
    """A bench's `auto` run names the learner kinds (auto leaves out the recipes made for the
    probe alone when another trains); with the probe alone its run id is the plain one."""
    from distill_core.config import RunConfig

    probe = BenchConfig(datasets=["sst2"], methods=["auto"], budgets=[5])
    run = probe.run_config("sst2", "auto", 5)
    assert run.evaluate.learners == ["linear_probe"]
    plain = RunConfig.model_validate({"run": {"name": run.run.name, "seeds": run.run.seeds},
                                      "data": {"dataset": "sst2", "data_dir": None},
                                      "synthesize": {"method": "auto", "per_class": 5,
                                                     "soft_labels": False},
                                      "compute": probe.compute.model_dump()})
    assert run.run_id() == plain.run_id()
    both = BenchConfig(datasets=["sst2"], methods=["auto", "kmeans"], budgets=[5], learners=[
        {"kind": "finetune", "full_seeds": 0}, {"kind": "linear_probe"},
        {"kind": "linear_probe", "name": "probe_c10", "C": 10}])
    assert both.run_config("sst2", "auto", 5).evaluate.learners == ["finetune", "linear_probe"]
    assert both.run_config("sst2", "auto", 5).run_id() != run.run_id()
    assert both.run_config("sst2", "kmeans", 5).evaluate.learners == ["linear_probe"]
