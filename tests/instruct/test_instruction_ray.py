"""Instruction data on Ray: the reference decoder's signals as one Ray task and each `sft_lora`
fit as another, with the same IFD and scores as in process, each fit's row naming the Ray
worker it ran on, and the report saying where the work ran."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from distill_core.config import RunConfig
from distill_core.report import build_report


def _config(data: Path, decoder: Path, backend: str) -> RunConfig:
    return RunConfig.model_validate({
        "run": {"name": f"instruct-{backend}", "seeds": [0, 1]},
        "data": {"task": "instruction", "data_dir": str(data), "instruction": {
            "train": {"path": "alpaca.json", "instruction": "instruction", "input": "input",
                      "response": "output"},
            "holdout": {"fraction": 0.25, "seed": 0}}},
        "signals": {"model": "all-MiniLM-L6-v2", "precision": "fp32", "max_length": 64},
        "synthesize": {"method": "ifd", "budget": 0.25},
        "evaluate": {"baselines": ["random", "full"]},
        "instruct": {"reference": {"model": str(decoder), "max_length": 96},
                     "sft": {"model": str(decoder), "steps": 2, "batch_size": 4,
                             "max_length": 96}},
        "compute": {"backend": backend, "num_actors": 1, "cpus_per_actor": 0.5,
                    "torch_threads": 1},
    })


def test_sft_fits_run_as_ray_tasks_with_the_in_process_scores(
        local_ray, tiny_decoder: Path, alpaca_records, tmp_path: Path, run_stages) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "alpaca.json").write_text(json.dumps(alpaca_records[:24]), encoding="utf-8")
    scores, ifd = {}, {}
    for backend in ("ray", "local"):
        store, outcomes = run_stages(_config(data, tiny_decoder, backend), tmp_path / backend)
        assert outcomes[-1].stage == "evaluate" and outcomes[-1].status == "computed"
        scores[backend] = store.read("evaluate").to_pylist()
        ifd[backend] = store.read("teacher").column("ifd").to_pylist()
        assert store.manifest("teacher")["backend"] == backend
        manifest = store.manifest("evaluate")
        assert manifest["backend"] == backend
        report = build_report(store.root)
        if backend == "ray":
            assert manifest["workers"] and "local" not in manifest["workers"]
            assert f"Fits ran on the ray backend ({manifest['workers'][0]}" in report
        else:
            assert manifest["workers"] == ["local"]
            assert "Fits ran on the local backend (local)" in report
    scored = [v for v in ifd["local"] if v is not None]
    assert len(scored) == 18 and all(math.isfinite(v) for v in scored)  # 24 rows, 25 % held out
    assert [v is None for v in ifd["ray"]] == [v is None for v in ifd["local"]]
    assert [v for v in ifd["ray"] if v is not None] == pytest.approx(scored, rel=1e-5)
    ray_rows = {(s["setting"], s["seed"]): s for s in scores["ray"]}
    local_rows = {(s["setting"], s["seed"]): s for s in scores["local"]}
    assert sorted(ray_rows) == sorted(local_rows) == [
        ("distilled", 0), ("distilled", 1), ("full", 0), ("random", 0), ("random", 1)]
    for key, row in ray_rows.items():
        assert row["worker"] != "local" and local_rows[key]["worker"] == "local"
        assert row["rows"] == local_rows[key]["rows"]
        assert math.isfinite(row["eval_loss"])
        assert row["eval_loss"] == pytest.approx(local_rows[key]["eval_loss"], rel=1e-5)
