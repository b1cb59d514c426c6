"""`textdistill bench` on instruction data: methods × budget × seeds as pipeline runs through
evaluate, baselines fitted once, the summary's gap, the report's table and plot, a resumed rerun,
and a bad method refused in one line before any work."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from flows.cli import app


def _bench_yaml(tmp_path: Path, decoder: Path, records: list[dict], methods: list[str]) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "alpaca.json").write_text(json.dumps(records), encoding="utf-8")
    config = {
        "task": "instruction", "name": "ibench", "data_dir": str(data),
        "datasets": [{"name": "mini", "instruction": {
            "train": {"path": "alpaca.json", "instruction": "instruction", "input": "input",
                      "response": "output"},
            "holdout": {"fraction": 0.25, "seed": 0}}}],
        "budgets": [0.25], "methods": methods, "seeds": [0, 1],
        "run": {"signals": {"model": "all-MiniLM-L6-v2", "precision": "fp32", "max_length": 64},
                "instruct": {"reference": {"model": str(decoder), "max_length": 96},
                             "sft": {"model": str(decoder), "steps": 2, "batch_size": 4,
                                     "max_length": 96}}},
        "compute": {"torch_threads": 1}}
    path = tmp_path / "ibench.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_instruction_grid_fits_baselines_once_and_reports_the_gap(
        prefect_server, tiny_decoder: Path, alpaca_records, tmp_path: Path) -> None:
    config = _bench_yaml(tmp_path, tiny_decoder, alpaca_records[:24], ["kmeans", "ifd"])
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["bench", str(config), "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert "2 runs (2 computed now), 7 fits" in " ".join(result.output.split())
    [folder] = [p for p in runs.iterdir() if (p / "bench.json").is_file()]  # not a run folder
    fits = json.loads((folder / "fits.json").read_text())
    by_run: dict[str, list[str]] = {}
    for fit in fits:
        by_run.setdefault(Path(fit["run_dir"]).name, []).append(fit["method"])
    # kmeans (the first method) fits the baselines; ifd's run fits its own sets only
    assert sorted(map(sorted, by_run.values())) == [
        ["full", "kmeans", "kmeans", "random", "random"], ["ifd", "ifd"]]
    summary = {(e["budget"], e["method"]): e
               for e in json.loads((folder / "summary.json").read_text())}
    assert sorted(summary) == [("0.25", "ifd"), ("0.25", "kmeans"), ("0.25", "random"),
                               ("full", "full")]
    random, full = summary[("0.25", "random")], summary[("full", "full")]
    assert random["eval_loss"]["n"] == 2 and full["eval_loss"]["n"] == 1
    assert full["rows"] == 18 and random["rows"] == 4  # 24 rows, 25 % held out; 25 % of 18
    for method in ("kmeans", "ifd"):
        entry = summary[("0.25", method)]
        expected = ((random["eval_loss"]["mean"] - entry["eval_loss"]["mean"])
                    / (random["eval_loss"]["mean"] - full["eval_loss"]["mean"]))
        assert math.isclose(entry["gap_closed"], expected, rel_tol=1e-9)
    report = (folder / "report.md").read_text()
    assert "## mini" in report and "| 0.25 | ifd | 4 |" in report
    assert (folder / "plots" / "mini.png").stat().st_size > 1000
    assert "<img src=\"plots/mini.png\"" in (folder / "report.html").read_text()
    facts = json.loads((folder / "bench.json").read_text())
    assert facts["runs"] == 2 and len(facts["inputs"]) == 2

    before = (folder / "summary.json").read_text()
    again = CliRunner().invoke(app, ["bench", str(config), "--runs-dir", str(runs)])
    assert again.exit_code == 0, again.output
    assert "2 runs (0 computed now), 7 fits" in " ".join(again.output.split())
    assert (folder / "summary.json").read_text() == before


def test_a_classification_method_is_refused_in_one_line(tiny_decoder: Path, alpaca_records,
                                                        tmp_path: Path) -> None:
    config = _bench_yaml(tmp_path, tiny_decoder, alpaca_records[:24], ["herding"])
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "bench", str(config),
                           "--runs-dir", str(tmp_path / "runs")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "herding" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_shipped_instruction_benchmarks_plan_their_grids() -> None:
    from distill_core.bench.instruction import load_instruction_bench, plan_groups, read_bench_yaml

    root = Path(__file__).resolve().parents[2] / "configs"
    cpu = load_instruction_bench("cpu", read_bench_yaml(root / "bench-instruction-cpu.yaml"))
    assert [(g.method, g.budget, g.baselines) for g in plan_groups(cpu, "runs")] == [
        ("kmeans", 0.01, ("random",)), ("ifd", 0.01, ())]
    gpu = load_instruction_bench("gpu", read_bench_yaml(root / "bench-instruction-gpu.yaml"))
    groups = plan_groups(gpu, "runs")
    assert len(groups) == 5 * (3 + 2)  # 5 methods x (3 Alpaca + 2 GSM8K budgets)
    gsm8k = [g for g in groups if g.dataset == "gsm8k"]
    assert {g.budget for g in gsm8k} == {100, 500}
    assert all(g.config.instruct.sft.exact_match_rows == 100 for g in gsm8k)
    assert all(g.config.instruct.sft.exact_match_rows == 0 for g in groups
               if g.dataset == "alpaca_subset")
    assert sum("full" in g.baselines for g in groups) == 2  # once per dataset
    assert sum("random" in g.baselines for g in groups) == 5  # once per (dataset, budget)
    assert {g.config.compute.gpus_per_actor for g in groups} == {1}
