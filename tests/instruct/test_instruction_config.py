"""The instruction task kind in the run config: what it accepts, and one-line refusals.

Refusals are checked through a real `textdistill plan` subprocess (no Prefect needed):
exit 2, one line naming the key, no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_core.config import RunConfig, load_config
from distill_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
INSTRUCTION = str(ROOT / "configs" / "instruction-alpaca-cpu.yaml")
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")


def _plan(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "flows.cli", "plan", *args], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    both = result.stdout + result.stderr
    lines = [line for line in both.splitlines() if line.strip()]
    assert result.returncode == 2 and "Traceback" not in both and len(lines) == 1, both
    assert lines[0].startswith("error: "), both
    return lines[0]


def test_plan_fails_on_a_response_column_the_header_lacks(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("question,solution\nWhat is 2+2?,4\nWhat is 3+3?,6\n")
    line = _plan(INSTRUCTION, "--set", f"data.instruction.train.path={rows}",
                 "--set", "data.instruction.preset=null",
                 "--set", "data.instruction.train.instruction=question",
                 "--set", "data.instruction.train.response=answer",
                 "--set", "data.instruction.holdout.fraction=0.5")
    assert f"{rows}: required column 'answer' not found" in line


def test_methods_are_refused_on_the_other_task_kind(tmp_path: Path) -> None:
    line = _plan(INSTRUCTION, "--set", "synthesize.method=herding")
    assert "synthesize.method 'herding' does not run on instruction data" in line
    assert "random, kmeans, llm_synth, longest, ifd, deita, less" in line
    line = _plan(QUICKSTART, "--set", "synthesize.method=deita")
    assert "synthesize.method 'deita' does not run on classification data" in line
    line = _plan(INSTRUCTION, "--data-dir", str(tmp_path), "--runs-dir", str(tmp_path))
    assert "alpaca_subset/alpaca_5000.json does not exist" in line


def test_instruction_config_defaults_and_refusals() -> None:
    cfg = load_config(INSTRUCTION)
    train, evaluation, holdout = cfg.data.instruction.resolved()
    assert cfg.is_instruction and cfg.data.dataset is None
    assert (train.instruction, train.input, train.response) == ("instruction", "input", "output")
    assert evaluation is None and (holdout.fraction, holdout.seed) == (0.1, 0)
    gsm8k = load_config(INSTRUCTION, ["data.instruction.preset=gsm8k"])
    assert gsm8k.data.instruction.resolved()[1].path == "gsm8k/test.jsonl"
    # The instruction settings stay out of a classification run id; they are in this one.
    assert RunConfig().run_id() == RunConfig(instruct={"eval_rows": 3}).run_id()
    assert cfg.run_id() != load_config(INSTRUCTION, ["instruct.eval_rows=3"]).run_id()
    for overrides, words in (
            (["synthesize.budget=3"], "synthesize.budget is instruction data's budget"),
            (["data.instruction={preset: alpaca_subset}"], "needs `data.task: instruction`")):
        with pytest.raises(ConfigError, match=words):
            load_config(QUICKSTART, overrides)
    # what the flow receives (every key set) validates as the config it came from
    for method in ("llm_synth", "less"):
        dumped = load_config(INSTRUCTION, [f"synthesize.method={method}"])
        assert RunConfig.model_validate(dumped.model_dump(mode="json")) == dumped
    for overrides, words in ((["filter.teacher_consistency.enabled=true"], "no labels"),
                             (["synthesize.budget=2.5"], "a whole row count"),
                             (["evaluate.learners=[finetune]"], "scored by `sft_lora`"),
                             (["data.dataset=sst2"], "drop data.dataset"),
                             (["data.instruction.eval={path: x.json}"], "brings its own"),
                             (["synthesize.method=llm_synth", "generate.min_words=2"],
                              r"generate\.min_words \(classification's line filters")):
        with pytest.raises(ConfigError, match=words):
            load_config(INSTRUCTION, overrides)


def test_validate_lists_the_rows_instruction_ingest_would_reject(tmp_path: Path) -> None:
    lines = ['{"question": "What is 2 + 2?", "answer": "#### 4"}', '{"question": "broken',
             '{"question": "What is 3 + 3?"}', '{"question": "", "answer": "#### 1"}']
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "test.jsonl").write_text(lines[0] + "\n", encoding="utf-8")
    source = "{path: %s, instruction: question, response: answer}"
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "validate", INSTRUCTION, "--json",
         "--set", f"data.instruction={{train: {source % 'train.jsonl'}, "
                  f"eval: {source % 'test.jsonl'}}}", "--data-dir", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [(p["source_row"], p["reason"]) for p in report["problems"]] == [
        (2, "invalid_json"), (3, "missing_field"), (4, "empty_prompt")]
    assert [(s["split"], s["rows_out"]) for s in report["sources"]] == [("train", 1),
                                                                        ("eval", 1)]
    assert report["unusable"] == []
    (tmp_path / "train.jsonl").write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    result = subprocess.run(result.args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    report = json.loads(result.stdout)  # no usable training row: every reject still listed
    assert [p["reason"] for p in report["problems"]] == [
        "invalid_json", "missing_field", "empty_prompt"]
    assert report["unusable"] == [f"{tmp_path / 'train.jsonl'}: no usable training rows (3 "
                                  "rejected: invalid_json 1, missing_field 1, empty_prompt 1)"]
    assert result.stderr.strip() == f"error: {report['unusable'][0]}"


@pytest.mark.parametrize(("key", "value"), [
    ("synthesize.per_class", "20"), ("synthesize.center_features", "true"),
    ("teacher.kind", "finetune"), ("teacher.C", "3.0"), ("evaluate.C", "5"),
    ("evaluate.max_iter", "50")])
def test_classification_keys_an_instruction_run_never_reads_are_refused(
        key: str, value: str) -> None:
    line = _plan(INSTRUCTION, "--set", f"{key}={value}")
    assert f"task instruction: {key} (" in line and "does not apply; drop it" in line
