"""Issue 19: ingest streams. Batches of records become corpus rows and rejects written part by
part; the output is the whole-table output; duplicates are found across batches and files; a
folder or glob of daily files is one source."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

from distill_core.artifacts import stage_writer
from distill_core.artifacts.counts import Counts
from distill_core.config import load_config
from distill_core.ingest import ingest as ingest_module
from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.ingest.ingest import resolve_sources
from distill_core.ingest.sources import FileSource, SplitSource

ROOT = Path(__file__).resolve().parents[2]
BINARY = {"0": "negative", "1": "positive"}
# Bad rows spread through a real SST-2 slice (line number after which each goes).
BAD_ROWS = {
    3: b"   \t0\n",                                # empty text
    40: b"a label from nowhere\t7\n",              # unknown label
    41: b"too\tmany\tfields\n",                    # malformed
    90: b"bad \xff\xfe bytes\t0\n",                # undecodable
    150: b"no label here\t\n",                    # missing label
}


def _sst2_with_bad_rows(slice_dir: Path, target: Path) -> Path:
    """A data folder whose sst2 train file is the real slice with bad rows and repeats of
    earlier rows (in other case and spacing) spread through it."""
    shutil.copytree(slice_dir / "sst2_glue", target / "sst2_glue")
    train = target / "sst2_glue" / "train.tsv"
    lines = train.read_bytes().splitlines(keepends=True)
    out = []
    for number, line in enumerate(lines, start=1):
        out.append(line)
        if number in BAD_ROWS:
            out.append(BAD_ROWS[number])
        if number in (60, 200, 299):  # a repeat of row 2, 20 and 100 rows of the slice later
            text, label = lines[{60: 1, 200: 19, 299: 99}[number]].rstrip(b"\n").split(b"\t")
            out.append(b"  " + text.upper() + b" \t" + label + b"\n")
    train.write_bytes(b"".join(out))
    return target


def _config(tmp_path: Path, data: Path, names: str):
    label_names = "\n  label_names: [negative, positive]" if names == "given" else ""
    source = ("{{file: {{path: sst2_glue/{}.tsv, format: tsv, quoting: false, text: sentence, "
              "label: label, label_map: {{'0': negative, '1': positive}}}}}}")
    path = _write(tmp_path / "cfg.yaml", f"""
data:
  dataset: null
  data_dir: {data}
  train: {source.format("train")}
  eval: {source.format("dev")}{label_names}
""")
    return load_config(path, [])


@pytest.mark.parametrize("names", ["given", "inferred"])
def test_streamed_stage_equals_the_whole_table_with_rolling_parts(
        slice_dir: Path, tmp_path: Path, run_stages, monkeypatch: pytest.MonkeyPatch,
        names: str) -> None:
    data = _sst2_with_bad_rows(slice_dir, tmp_path / "data")
    cfg = _config(tmp_path, data, names)
    spec = resolve_dataset(None, cfg.data.train, cfg.data.eval, cfg.data.label_names)
    assert (spec.label_names is None) == (names == "inferred")
    whole = ingest_dataset(spec, data)  # one batch: the whole table
    # Small batches and small parts: rows, rejects and repeats all cross batch boundaries.
    monkeypatch.setattr(ingest_module, "BATCH_ROWS", 16)
    monkeypatch.setattr(stage_writer, "ROWS_PER_PART", 6)
    store, _ = run_stages(cfg, tmp_path / "runs", "ingest")
    assert store.read("ingest").equals(whole.corpus)
    assert store.read("ingest", rejects=True).equals(whole.rejects)
    assert len(store.parts("ingest")) == -(-whole.corpus.num_rows // 6) > 50
    assert len(store.parts("ingest", rejects=True)) == 2  # 8 rejects, 6 to a part
    assert [(r["source_row"], r["reason"]) for r in whole.rejects.to_pylist()] == [
        (4, "empty_text"), (42, "unknown_label"), (44, "malformed_row"),
        (64, "duplicate_example"), (95, "undecodable_bytes"), (156, "missing_label"),
        (207, "duplicate_example"), (307, "duplicate_example")]
    assert [r["detail"].rsplit(" as ")[-1] for r in whole.rejects.to_pylist()
            if r["reason"] == "duplicate_example"] == ["row 2", "row 21", "row 105"]
    manifest = store.manifest("ingest")
    assert manifest["label_names"] == whole.label_names == ["negative", "positive"]
    assert manifest["inputs"]["sources"] == whole.sources
    split_rows = {s: int(pc.sum(pc.equal(whole.corpus["split"], s)).as_py()) for s in
                  ("train", "eval")}
    expected = Counts.of(whole.rows_in, whole.corpus.num_rows,
                         whole.rejects["reason"].to_pylist(), rows_by_split=split_rows)
    assert manifest["counts"] == expected.to_dict()
    assert not [p for p in store.stage_dir("ingest").rglob("*") if "spill" in p.name]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _csv_source(path: str | Path, **options) -> SplitSource:
    return SplitSource(file=FileSource(path=str(path), text="text", label="label", **options))


def test_duplicates_across_batch_boundaries(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    rows = ["a fine film,1", "a dull film,0", "x,1", "y,0", "A  FINE film ,1", "z,1",
            "a dull film,0", "w,0", "a fine film,0"]  # rows 6 and 8 repeat rows 2 and 3
    path = _write(tmp_path / "rows.csv", "text,label\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(ingest_module, "BATCH_ROWS", 2)
    result = ingest_dataset(resolve_dataset(None, _csv_source(path), _csv_source(path)), None)
    rejects = [(r["split"], r["source_row"], r["reason"], r["detail"])
               for r in result.rejects.to_pylist()]
    assert rejects == [
        ("train", 6, "duplicate_example", "same normalised text and label as row 2"),
        ("train", 8, "duplicate_example", "same normalised text and label as row 3")]
    train = [r for r in result.corpus.to_pylist() if r["split"] == "train"]
    assert [r["source_row"] for r in train] == [2, 3, 4, 5, 7, 9, 10]  # 10: another label
    evaluation = [r for r in result.corpus.to_pylist() if r["split"] == "eval"]
    assert len(evaluation) == 9 and result.eval_duplicates == 2  # kept as given, counted


def test_a_glob_of_daily_files_is_one_source_in_name_order(tmp_path: Path) -> None:
    daily = tmp_path / "daily"
    second = _write(daily / "2024-01-02.csv", "text,label\nthe second day,1\nday one,0\n")
    first = _write(daily / "2024-01-01.csv", "text,label\nday one,0\na fine film,1\n")
    _write(daily / "notes.txt", "not a csv: the glob does not match it")
    evaluation = _write(tmp_path / "eval.csv", "text,label\nheld out,1\n")
    spec = resolve_dataset(None, _csv_source("daily/*.csv"), _csv_source(evaluation))
    result = ingest_dataset(spec, tmp_path)
    train = [(Path(r["source"]).name, r["source_row"], r["text"])
             for r in result.corpus.to_pylist() if r["split"] == "train"]
    assert train == [("2024-01-01.csv", 2, "day one"), ("2024-01-01.csv", 3, "a fine film"),
                     ("2024-01-02.csv", 2, "the second day")]
    (reject,) = result.rejects.to_pylist()
    assert (reject["source"], reject["source_row"], reject["reason"]) == (
        str(second), 3, "duplicate_example")
    assert reject["detail"] == f"same normalised text and label as row 2 of {first}"
    source = result.sources[0]
    assert source["source"] == str(tmp_path / "daily" / "*.csv") and source["rows_read"] == 4
    assert [f["file"] for f in source["files"]] == [str(first), str(second)]
    # A new day's file changes the source's identity (the stage reruns); old rows keep ids.
    before = resolve_sources(spec, tmp_path)[0].identity()
    _write(daily / "2024-01-03.csv", "text,label\na third day,1\n")
    after = resolve_sources(spec, tmp_path)[0].identity()
    assert after["files"][:2] == before["files"] and len(after["files"]) == 3
    again = ingest_dataset(spec, tmp_path)
    assert again.corpus["example_id"].to_pylist()[:3] == result.corpus[
        "example_id"].to_pylist()[:3]
    # The folder itself reads the same files (notes.txt moved out: a folder reads them all).
    (daily / "notes.txt").unlink()
    folder = ingest_dataset(resolve_dataset(None, _csv_source("daily"),
                                            _csv_source(evaluation)), tmp_path)
    assert folder.corpus.equals(again.corpus)


def _one_line_error(config: Path, words: str) -> None:
    """`textdistill validate CONFIG` in a subprocess: exit 2, one line naming `words`."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "flows.cli", "validate", str(config)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    both = result.stdout + result.stderr
    lines = [line for line in both.splitlines() if line.strip()]
    assert result.returncode == 2 and "Traceback" not in both, both
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], both


def test_an_empty_or_unreadable_file_in_a_glob_is_a_one_line_error(tmp_path: Path) -> None:
    daily = tmp_path / "daily"
    _write(daily / "2024-01-01.csv", "text,label\nday one,0\na fine film,1\n")
    bad = _write(daily / "2024-01-02.csv", "")
    config = _write(tmp_path / "cfg.yaml", f"""
data:
  dataset: null
  data_dir: {tmp_path}
  train: {{file: {{path: "daily/*.csv", text: text, label: label}}}}
  eval: {{file: {{path: "daily/2024-01-01.csv", text: text, label: label}}}}
""")
    _one_line_error(config, f"{bad}: file is empty")
    bad.unlink()
    bad.symlink_to(tmp_path / "gone.csv")  # a dangling link: unreadable
    _one_line_error(config, f"{bad}: file not found")
    bad.unlink()
    shutil.rmtree(daily)
    _one_line_error(config, f"{daily / '*.csv'}: no file matches this pattern")
