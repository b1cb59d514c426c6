"""Instruction ingest on real Alpaca and GSM8K rows, with bad rows mixed in."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_core.errors import ConfigError, IngestError
from distill_core.instruct.ingest import (
    ALPACA_COLUMNS,
    GSM8K_COLUMNS,
    Holdout,
    InstructionSource,
    ingest_alpaca,
    ingest_gsm8k,
    ingest_instructions,
)
from distill_core.instruct.rows import instruction_id


def _reasons(rejects: pa.Table) -> dict[int, tuple[str, str | None]]:
    return {r["source_row"]: (r["reason"], r["field"]) for r in rejects.to_pylist()}


def test_alpaca_json_bad_rows_go_to_rejects_with_reasons(alpaca_records, tmp_path: Path) -> None:
    records = [dict(r) for r in alpaca_records[:20]]
    del records[3]["output"]                      # row 4: missing response key
    records[5]["instruction"] = "   "             # row 6: empty prompt
    records[7]["output"] = ""                     # row 8: empty response
    records[9]["input"] = ["not", "a", "text"]    # row 10: non-scalar input
    records[11] = dict(records[0])                # row 12: repeats row 1
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(records))
    result = ingest_instructions(InstructionSource(path=str(path), **ALPACA_COLUMNS),
                                 holdout=Holdout(fraction=0.25, seed=3))
    assert _reasons(result.rejects) == {
        4: ("missing_field", "output"), 6: ("empty_prompt", "instruction"),
        8: ("empty_response", "output"), 10: ("not_a_scalar", "input"),
        12: ("duplicate_example", "instruction")}
    assert set(result.rejects.column("source").to_pylist()) == {str(path)}
    assert result.corpus.num_rows + result.rejects.num_rows == 20 == result.rows_in
    rows = result.corpus.to_pylist()
    first = rows[0]
    assert first["source_row"] == 1 and first["prompt"] == (
        f"{records[0]['instruction']}\n\n{records[0]['input']}")
    assert first["example_id"] == instruction_id(first["prompt"], first["response"])
    no_input = next(r for r in rows if r["input"] is None)
    assert no_input["prompt"] == no_input["instruction"]
    assert sum(r["split"] == "eval" for r in rows) == round(0.25 * 15) == result.holdout["rows"]


def test_gsm8k_jsonl_invalid_lines_and_missing_answer(gsm8k_lines, tmp_path: Path) -> None:
    lines = list(gsm8k_lines[:10])
    lines[2] = lines[2][:40] + "\n"                                     # line 3: cut JSON
    lines[4] = json.dumps({"question": json.loads(lines[4])["question"]}) + "\n"  # no answer
    lines[6] = json.dumps({"question": "", "answer": "#### 3"}) + "\n"  # empty prompt
    train = tmp_path / "train.jsonl"
    train.write_text("".join(lines))
    test = tmp_path / "test.jsonl"
    test.write_text("".join(gsm8k_lines[20:25] + gsm8k_lines[20:21]))
    result = ingest_instructions(InstructionSource(path=str(train), **GSM8K_COLUMNS),
                                 eval=InstructionSource(path=str(test), **GSM8K_COLUMNS))
    assert _reasons(result.rejects) == {3: ("invalid_json", None),
                                        5: ("missing_field", "answer"),
                                        7: ("empty_prompt", "question")}
    splits = result.corpus.column("split").to_pylist()
    assert splits.count("train") == 7 and splits.count("eval") == 6  # the eval repeat is kept
    assert result.sources[1]["duplicates_kept"] == 1
    row = result.corpus.to_pylist()[0]
    assert row["response"].endswith("#### 72") and row["input"] is None


def test_column_map_reads_csv_and_parquet_alike(alpaca_records, tmp_path: Path) -> None:
    records = alpaca_records[:12]
    table = pa.table({"q": [r["instruction"] for r in records],
                      "ctx": [r["input"] for r in records],
                      "a": [r["output"] for r in records]})
    pq.write_table(table, tmp_path / "rows.parquet")
    table.to_pandas().to_csv(tmp_path / "rows.csv", index=False)
    table.to_pandas().to_csv(tmp_path / "bare.csv", index=False, header=False)
    ids = []
    for name, extra in (("rows.parquet", {}), ("rows.csv", {}),
                        ("bare.csv", {"header": False, "columns": ["q", "ctx", "a"]})):
        result = ingest_instructions(
            InstructionSource(path=name, instruction="q", input="ctx", response="a", **extra),
            holdout=Holdout(fraction=0.2), data_dir=tmp_path)
        assert result.rejects.num_rows == 0
        ids.append(sorted(result.corpus.column("example_id").to_pylist()))
    assert ids[0] == ids[1] == ids[2] and len(set(ids[0])) == 12
    with pytest.raises(ValueError, match="bare.csv: a csv file without header needs `columns`"):
        InstructionSource(path="bare.csv", instruction="q", response="a", header=False)


def test_alpaca_holdout_is_seeded_recorded_and_out_of_the_pool(shared_datasets: Path) -> None:
    first = ingest_alpaca(shared_datasets, fraction=0.1, seed=0)
    again = ingest_alpaca(shared_datasets, fraction=0.1, seed=0)
    other = ingest_alpaca(shared_datasets, fraction=0.1, seed=1)
    # The real file has two rows with an empty output.
    assert first.rejects.column("reason").to_pylist() == ["empty_response"] * 2
    assert first.holdout == again.holdout
    assert first.holdout["rows"] == round(0.1 * 4998) and first.holdout["pool_rows"] == 4498
    assert other.holdout["ids_sha256"] != first.holdout["ids_sha256"]
    rows = first.corpus.to_pylist()
    held = {r["example_id"] for r in rows if r["split"] == "eval"}
    pool = {r["example_id"] for r in rows if r["split"] == "train"}
    assert len(held) == 500 and not held & pool


def test_gsm8k_uses_its_test_file(shared_datasets: Path) -> None:
    result = ingest_gsm8k(shared_datasets)
    splits = result.corpus.column("split").to_pylist()
    assert (splits.count("train"), splits.count("eval")) == (7473, 1319)
    assert result.holdout is None and result.rejects.num_rows == 0


def test_holdout_and_eval_file_are_exclusive(tmp_path: Path) -> None:
    source = InstructionSource(path=str(tmp_path / "x.json"))
    with pytest.raises(ConfigError, match="either an evaluation file or a holdout"):
        ingest_instructions(source)  # neither
    with pytest.raises(ConfigError, match="either an evaluation file or a holdout"):
        ingest_instructions(source, eval=source, holdout=Holdout(fraction=0.1))  # both


def test_a_relative_file_without_a_data_folder_says_how_to_set_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IngestError, match=r"alpaca\.json: file not found \(a relative path "
                       r"resolves against the data folder, and none is set: pass --data-dir"):
        ingest_instructions(InstructionSource(path="alpaca.json"), holdout=Holdout())
