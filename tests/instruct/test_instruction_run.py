"""Instruction data through the `distill` flow: a tiny decoder, a slice of Alpaca with bad rows.

One run of `less` (the reference decoder's gradients) end to end under the Prefect test
server: the funnel balances at every stage and hand-off, the rejects carry their reasons,
a distilled row's lineage reaches its source line, sft_lora scores the distilled sets next
to random and full data, and a rerun resumes every stage.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml
from typer.testing import CliRunner

from distill_core.config import RunConfig
from flows.cli import app

BAD_ROWS = [
    {"instruction": "", "input": "", "output": "An answer with no question."},
    {"instruction": "Name a colour.", "input": "", "output": ""},
]


def _config(data: Path, decoder: Path) -> RunConfig:
    return RunConfig.model_validate({
        "run": {"name": "instruct-e2e", "seeds": [0, 1]},
        "data": {"task": "instruction", "data_dir": str(data), "instruction": {
            "train": {"path": "alpaca.json", "instruction": "instruction", "input": "input",
                      "response": "output"},
            "holdout": {"fraction": 0.25, "seed": 0}}},
        "signals": {"model": "all-MiniLM-L6-v2", "precision": "fp32", "max_length": 64},
        "synthesize": {"method": "less", "budget": 0.2, "oversample": 2,
                       "less": {"target_size": 8}},
        "filter": {"near_dedup": {"enabled": True}},
        "evaluate": {"baselines": ["random", "full"]},
        "instruct": {
            "reference": {"model": str(decoder), "max_length": 96, "grad_dim": 16,
                          "warm_steps": 2},
            "sft": {"model": str(decoder), "steps": 2, "batch_size": 4, "max_length": 96}},
    })


def test_less_runs_through_the_flow_with_a_balanced_funnel(
        prefect_server, tiny_decoder: Path, alpaca_records, tmp_path: Path, run_stages) -> None:
    from distill_core.artifacts.store import RunStore
    from distill_core.audit import RunAudit
    from flows.distill import distill

    data = tmp_path / "data"
    data.mkdir()
    records = alpaca_records[:36] + BAD_ROWS + [alpaca_records[3]]  # + a repeated row
    (data / "alpaca.json").write_text(json.dumps(records), encoding="utf-8")
    cfg = _config(data, tiny_decoder)
    state = distill(cfg.model_dump(mode="json"), str(tmp_path / "runs"), return_state=True)
    assert state.is_completed()
    run_dir = Path(state.result()["run_dir"])
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == [
        "evaluate", "filter", "ingest", "signals", "synthesize", "teacher"]

    audit = RunAudit(run_dir)
    funnel = audit.funnel()
    assert all(f["balanced"] for f in funnel), funnel
    by_stage = {f["stage"]: f for f in funnel if not f.get("handoff")}
    assert by_stage["ingest"]["rows_in"] == 39
    assert by_stage["ingest"]["rejects_by_reason"] == {
        "duplicate_example": 1, "empty_prompt": 1, "empty_response": 1}
    store = RunStore.open(run_dir)
    holdout = store.manifest("ingest")["holdout"]
    assert holdout["rows"] == 9 and holdout["pool_rows"] == 27  # 36 usable rows, 25 % held out
    assert store.manifest("synthesize")["budget_rows"] == 5  # 20 % of the pool of 27

    distilled = store.read("filter")
    assert distilled.num_rows == 2 * 5 and distilled.column("method").unique().to_pylist() == [
        "less"]
    row = distilled.to_pylist()[0]
    lineage = audit.lineage(row["example_id"])
    source = lineage["sources"][0]
    assert source["source"].endswith("alpaca.json") and source["split"] == "train"
    # source_row is 1-based: the record's position in the file
    assert records[source["source_row"] - 1]["output"] == source["text_pair"] == row["text_pair"]

    shown = CliRunner().invoke(app, ["audit", str(run_dir), "--example", row["example_id"]])
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split())  # rich wraps long lines
    assert f"prompt {row['text'].split()[0]}" in flat.replace("'", "").replace('"', "")
    assert f"response {row['text_pair'].split()[0]}" in flat.replace("'", "").replace('"', "")
    exported = CliRunner().invoke(app, ["export", str(run_dir), str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    card = (tmp_path / "export" / "README.md").read_text()
    assert "text-generation" in card and "text-classification" not in card
    assert "(less, 0.2 of the pool)" in card and "per class" not in card

    teacher = store.read("teacher")
    grads = [g for g in teacher.column("grad_features").to_pylist() if g is not None]
    assert len(grads) == 27 and len(grads[0]) == 16

    scores = store.read("evaluate").to_pylist()
    assert sorted((s["setting"], s["seed"]) for s in scores) == [
        ("distilled", 0), ("distilled", 1), ("full", 0), ("random", 0), ("random", 1)]
    assert all(math.isfinite(s["eval_loss"]) and s["eval_rows"] == 9 for s in scores)
    assert {s["rows"] for s in scores if s["setting"] != "full"} == {5}
    report = (run_dir / "report.md").read_text()
    assert "## Scores (`sft_lora`" in report and "held out of the training file" in report
    assert "instruction data: `alpaca.json`; method: `less`, budget 0.2 (5 rows)" in report
    assert "held-out loss against budget" in (run_dir / "report.html").read_text()

    _, outcomes = run_stages(cfg, tmp_path / "runs")  # a rerun resumes every stage
    assert [o.status for o in outcomes] == ["resumed"] * 6
    config = tmp_path / "instruct.yaml"  # `textdistill run` again: resumed, scores printed
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
    printed = CliRunner().invoke(app, ["run", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert printed.exit_code == 0, printed.output
    assert "sft_lora on the evaluation split" in printed.output
    assert "all 6 stages reused" in printed.output
    # Another budget is another run: the reference decoder's gradients come from the cache.
    other = cfg.model_copy(update={"synthesize": cfg.synthesize.model_copy(
        update={"budget": 0.1})})
    _, outcomes = run_stages(other, tmp_path / "runs", until="synthesize")
    assert [(o.stage, o.status) for o in outcomes] == [
        ("ingest", "cached"), ("signals", "cached"), ("teacher", "cached"),
        ("synthesize", "computed")]


def test_contamination_on_prompt_and_response_is_refilled_from_the_ranking(
        alpaca_records, tmp_path: Path, run_stages) -> None:
    from distill_core.audit import RunAudit

    data = tmp_path / "data"
    data.mkdir()
    evaluation = alpaca_records[40:45]
    copy = {**evaluation[0], "output": evaluation[0]["output"] + " Thanks."}  # passes ingest
    (data / "train.json").write_text(json.dumps(alpaca_records[:20] + [copy]), encoding="utf-8")
    (data / "eval.json").write_text(json.dumps(evaluation), encoding="utf-8")
    columns = {"instruction": "instruction", "input": "input", "response": "output"}
    cfg = RunConfig.model_validate({
        "run": {"name": "instruct-filter", "seeds": [0, 1]},
        "data": {"task": "instruction", "data_dir": str(data), "instruction": {
            "train": {"path": "train.json", **columns},
            "eval": {"path": "eval.json", **columns}}},
        "signals": {"model": "all-MiniLM-L6-v2", "precision": "fp32", "max_length": 64},
        "synthesize": {"method": "random", "budget": 8, "oversample": 3},
        "filter": {"contamination": {"ngram": 8}}})
    store, _ = run_stages(cfg, tmp_path / "runs", until="filter")
    assert store.manifest("synthesize")["ranked_rows"] == 21  # the whole pool, ranked
    rejects = store.read("filter", rejects=True).to_pylist()
    copied = [r for r in rejects if r["reason"].startswith("contaminated")]
    assert len(copied) == 2 and len({r["example_id"] for r in copied}) == 1  # once per seed
    distilled = store.read("filter")
    assert distilled.column("replicate").value_counts().to_pylist() == [
        {"values": 0, "counts": 8}, {"values": 1, "counts": 8}]  # refilled: never short
    assert copied[0]["example_id"] not in distilled.column("example_id").to_pylist()
    assert all(f["balanced"] for f in RunAudit(tmp_path / "runs" / cfg.run_id()).funnel())


def test_longest_through_the_stage_picks_the_longest_responses(
        alpaca_records, tmp_path: Path, run_stages) -> None:
    data = tmp_path / "data"
    data.mkdir()
    train, evaluation = alpaca_records[:20], alpaca_records[40:44]
    (data / "train.json").write_text(json.dumps(train), encoding="utf-8")
    (data / "eval.json").write_text(json.dumps(evaluation), encoding="utf-8")
    columns = {"instruction": "instruction", "input": "input", "response": "output"}
    cfg = RunConfig.model_validate({
        "run": {"name": "instruct-longest", "seeds": [0]},
        "data": {"task": "instruction", "data_dir": str(data), "instruction": {
            "train": {"path": "train.json", **columns},
            "eval": {"path": "eval.json", **columns}}},
        "signals": {"model": "all-MiniLM-L6-v2", "precision": "fp32", "max_length": 64},
        "synthesize": {"method": "longest", "budget": 4, "oversample": 2}})
    store, outcomes = run_stages(cfg, tmp_path / "runs", until="synthesize")
    assert [o.stage for o in outcomes] == ["ingest", "signals", "synthesize"]  # no decoder
    chosen = store.read("synthesize").sort_by("rank")
    by_length = sorted(train, key=lambda r: -len(r["output"].strip()))[:8]
    assert chosen.column("text_pair").to_pylist() == [r["output"].strip() for r in by_length]
    assert chosen.column("score").to_pylist() == [len(r["output"].strip()) for r in by_length]


def test_ifd_and_deita_through_the_stage_rank_by_the_reference_decoder_s_ifd(
        alpaca_records, tiny_decoder: Path, tmp_path: Path, run_stages) -> None:
    """The stage hands the rankings the teacher's IFD column and the prompt embeddings:
    `ifd` is the pool in descending IFD order (IFD >= max_score last); `deita` the same order
    with DEITA's cosine cap on the prompt embeddings (`synthesize.deita.max_cosine`)."""
    import numpy as np

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.json").write_text(json.dumps(alpaca_records[:24]), encoding="utf-8")
    (data / "eval.json").write_text(json.dumps(alpaca_records[40:44]), encoding="utf-8")
    columns = {"instruction": "instruction", "input": "input", "response": "output"}
    base = {
        "run": {"name": "instruct-ifd", "seeds": [0]},
        "data": {"task": "instruction", "data_dir": str(data), "instruction": {
            "train": {"path": "train.json", **columns},
            "eval": {"path": "eval.json", **columns}}},
        "signals": {"model": "all-MiniLM-L6-v2", "precision": "fp32", "max_length": 64},
        "instruct": {"reference": {"model": str(tiny_decoder), "max_length": 96}},
    }
    ranked_ids = {}
    for method in ("ifd", "deita"):
        cfg = RunConfig.model_validate({**base, "synthesize": {
            "method": method, "budget": 4, "oversample": 2,
            "deita": {"max_cosine": 0.2}}})
        store, _ = run_stages(cfg, tmp_path / "runs", until="synthesize")
        ranked_ids[method] = store.read("synthesize").sort_by("rank").column(
            "example_id").to_pylist()
    corpus, teacher = store.read("ingest"), store.read("teacher")
    train = [i for i, s in enumerate(corpus.column("split").to_pylist()) if s == "train"]
    ids = [corpus.column("example_id")[i].as_py() for i in train]
    ifd = np.asarray([teacher.column("ifd")[i].as_py() for i in train], dtype=np.float64)
    assert np.isfinite(ifd).all() and len(set(ifd.tolist())) == len(ifd)
    usable = sorted((i for i in range(len(ids)) if ifd[i] < 1.0), key=lambda i: -ifd[i])
    by_ifd = usable + sorted((i for i in range(len(ids)) if ifd[i] >= 1.0),
                             key=lambda i: -ifd[i])
    assert ranked_ids["ifd"] == [ids[i] for i in by_ifd[:8]]

    vectors = np.asarray([store.read("signals").column("embedding")[i].as_py() for i in train])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    capped: list[int] = []
    for i in by_ifd:
        if len(capped) < 8 and all(float(unit[i] @ unit[j]) < 0.2 for j in capped):
            capped.append(i)
    capped += [i for i in by_ifd if i not in capped][:8 - len(capped)]
    assert ranked_ids["deita"] == [ids[i] for i in capped]
    assert ranked_ids["deita"] != ranked_ids["ifd"]  # the cap changed the picks here
