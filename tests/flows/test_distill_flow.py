"""The `distill` flow end to end under a Prefect test server, and the CLI around it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from distill_core.config import load_config

ROOT = Path(__file__).resolve().parents[2]
# auto's folds in this process: the suite's two xdist workers already keep both cores busy,
# so fold worker processes add only their cold start (the workers' own tests:
# tests/synthesize/test_auto.py)
AUTO_IN_PROCESS = ["compute.cv_workers=1"]


def test_distill_flow_records_runs_tasks_and_artifacts(prefect_server, slice_dir: Path,
                                                       tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.distill import distill

    cfg = load_config(ROOT / "configs" / "quickstart.yaml",
                      [f"data.data_dir={slice_dir}", "run.seeds=[0,1]",
                       "synthesize.per_class=4", *AUTO_IN_PROCESS])
    # Called without the CLI's tags context, like a deployment's run: the flow tags itself.
    state = distill(cfg.model_dump(mode="json"), str(tmp_path), return_state=True)
    assert state.is_completed()
    result = state.result()
    run_dir = Path(result["run_dir"])
    assert run_dir.parent == tmp_path.resolve() and Path(result["report"]).is_file()
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == [  # auto: no teacher stage
        "clean", "evaluate", "filter", "ingest", "signals", "synthesize"]
    assert (run_dir / "report.md").is_file()
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
        assert flow_run.name == f"{cfg.run_id()} (sst2 auto 4pc)"
        assert {"textdistill", "dataset:sst2", "method:auto", "budget:4pc", "backend:local",
                f"run:{cfg.run_id()}"} <= set(flow_run.tags)
        only_this_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        task_runs = client.read_task_runs(flow_run_filter=only_this_run)
        assert sorted(t.name.rsplit("-", 1)[0] for t in task_runs) == [
            "clean", "evaluate", "filter", "ingest", "report", "signals", "synthesize"]
        assert all(t.state.is_completed() for t in task_runs)
        assert all(f"run:{cfg.run_id()}" in t.tags for t in task_runs)
        assert "report" in {t.name for t in task_runs}  # no random suffix
        artifacts = client.read_artifacts(flow_run_filter=only_this_run)
    slug = cfg.run_id().lower().replace("_", "-").replace(".", "-")
    by_key = {a.key: a for a in artifacts}  # keys carry the run id: unique per run
    assert {f"{slug}-{s}-counts" for s in ("ingest", "signals", "synthesize", "filter",
                                           "evaluate")} | {f"{slug}-report"} <= set(by_key)
    filter_counts = {row["metric"]: row["value"] for row in json.loads(
        by_key[f"{slug}-filter-counts"].data)}
    assert filter_counts["rows out"] == 2 * 2 * 4
    report = by_key[f"{slug}-report"].data  # the scores first, then the whole report.md
    assert report.startswith(f"# textdistill run `{cfg.run_id()}`")  # report.md, whole
    assert report.index("## Scores") < report.index("## Funnel") and "auto (distilled)" in report
    assert "## Funnel" in report and "## Stages" in report


def test_artifact_keys_and_a_huge_report_artifact(tmp_path: Path) -> None:
    from tasks.stages import MAX_REPORT_CHARS, artifact_key, report_markdown

    assert artifact_key("My_Run.v2-0a1b2c3d4e", "filter-counts") == (
        "my-run-v2-0a1b2c3d4e-filter-counts")  # Prefect keys: lowercase, digits, dashes
    report = tmp_path / "report.md"
    report.write_text("# textdistill run `r-1`\n" + "| row | 1 |\n" * 20_000, encoding="utf-8")
    text = report_markdown(report)
    assert text.startswith("# textdistill run `r-1`") and text.endswith(f"Report: `{report}`")
    assert len(text) < MAX_REPORT_CHARS + 1_000 and f"whole file is `{report}`" in text
    assert "| row | 1 |\n\n*(report truncated" in text  # cut at a line, not mid-row


def test_cli_run_audit_and_report(prefect_server, slice_dir: Path, tmp_path: Path) -> None:
    from flows.cli import app

    runner = CliRunner()
    args = ["run", str(ROOT / "configs" / "quickstart.yaml"), "--runs-dir", str(tmp_path),
            "--data-dir", str(slice_dir), "--set", "run.seeds=[0,1]",
            "--set", "synthesize.method=random", "--set", "synthesize.per_class=3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "random (distilled)" in result.output and "run folder:" in result.output
    run_dir = next(p for p in tmp_path.iterdir() if p.name.startswith("quickstart-"))
    audit = runner.invoke(app, ["audit", str(run_dir), "--json"])
    assert audit.exit_code == 0, audit.output
    payload = json.loads(audit.stdout)
    assert payload["balanced"] is True
    assert {f["stage"] for f in payload["funnel"]} >= {"ingest", "signals", "synthesize",
                                                        "filter"}
    example = payload["top_sources"][0]["example_id"]
    lineage = runner.invoke(app, ["audit", str(run_dir), "--example", example, "--json"])
    assert lineage.exit_code == 0 and json.loads(lineage.stdout)["sources"][0]["source_row"] > 1
    missing = runner.invoke(app, ["audit", str(run_dir), "--example", "nope"])
    assert missing.exit_code == 1
    report = runner.invoke(app, ["report", str(run_dir)])
    assert report.exit_code == 0 and "## Funnel" in report.output


def test_cli_run_scores_every_configured_learner(prefect_server, slice_dir: Path,
                                                 tmp_path: Path) -> None:
    from distill_core.artifacts.store import RunStore
    from flows.cli import app

    args = ["run", str(ROOT / "configs" / "quickstart.yaml"), "--runs-dir", str(tmp_path),
            "--data-dir", str(slice_dir), "--set", "run.seeds=[0]",
            "--set", "synthesize.per_class=2", "--set", AUTO_IN_PROCESS[0], "--set",
            "evaluate.learners=[linear_probe, {kind: finetune, steps: 2, batch_size: 8}]"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = next(p for p in tmp_path.iterdir() if p.name.startswith("quickstart-"))
    scores = RunStore.open(run_dir).read("evaluate").to_pylist()
    by_learner = {}
    for row in scores:
        by_learner.setdefault(row["learner"], set()).add(row["setting"])
    # a labelled choice of auto's also scores its learned soft labels, with every learner
    labelled = RunStore.open(run_dir).manifest("synthesize")["auto"]["learned_labels"]
    settings = {"distilled", "random", "full"} | ({"distilled_soft"} if labelled else set())
    assert by_learner == {"linear_probe": settings, "finetune": settings}
    assert all(0 <= row["accuracy"] <= 1 for row in scores)
    report = (run_dir / "report.md").read_text()
    assert "linear_probe" in report and "finetune" in report


def test_cli_user_errors_exit_2_without_traceback(tmp_path: Path, slice_dir: Path) -> None:
    from flows.cli import app

    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text("synthesize:\n  per_clas: 5\n")
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 2 and "per_clas" in result.output
    assert "Traceback" not in result.output
    missing = runner.invoke(app, ["audit", str(tmp_path / "no-such-run")])
    assert missing.exit_code == 2 and "run folder not found" in missing.output


def test_cli_data_error_inside_the_flow_exits_2(prefect_server, tmp_path: Path) -> None:
    from flows.cli import app

    empty = tmp_path / "data"
    empty.mkdir()
    result = CliRunner().invoke(app, ["run", str(ROOT / "configs" / "quickstart.yaml"),
                                      "--data-dir", str(empty), "--runs-dir",
                                      str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "sst2_glue/train.tsv: file not found" in result.output.replace("\n", "")


def test_validate_lists_every_problem_with_file_row_and_field(tmp_path: Path,
                                                               slice_dir: Path) -> None:
    from flows.cli import app

    bad = tmp_path / "train.tsv"
    bad.write_bytes(b"sentence\tlabel\ngood film\t1\n\t0\nbad film\t9\nnice \xff\t1\ndull\t0\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        "data:\n  dataset: null\n"
        f"  train: {{file: {{path: {bad}, quoting: false, text: sentence, label: label,"
        " label_map: {'0': neg, '1': pos}}}\n"
        f"  eval: {{file: {{path: {bad}, quoting: false, text: sentence, label: label,"
        " label_map: {'0': neg, '1': pos}}}\n")
    result = CliRunner().invoke(app, ["validate", str(config), "--json"])
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    train = [(p["source_row"], p["field"], p["reason"]) for p in problems
             if p["split"] == "train"]
    assert train == [(3, "sentence", "empty_text"), (4, "label", "unknown_label"),
                     (5, "sentence", "undecodable_bytes")]
    assert all(p["source"] == str(bad) for p in problems)
    clean = CliRunner().invoke(app, ["validate", "--data-dir", str(slice_dir),
                                     "--set", "data.dataset=rte"])
    assert clean.exit_code == 0, clean.output
    assert "entailment" in clean.output
