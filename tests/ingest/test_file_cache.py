"""Issue 19: a rerun over a folder of daily files that gained a file parses only the new
file; the old files' rows and rejects come from the runs folder's per-file cache, checked
against what the cache recorded, and the result is exactly a fresh ingest's."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_core.config import load_config
from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.ingest.file_cache import CORPUS, FOLDER, FileCache
from distill_core.ingest.ingest import IngestSummary, _Collect, stream_dataset
from distill_core.ingest.sources import FileSource, SplitSource

LABELS = {"0": "negative", "1": "positive"}


def _source(path: str) -> SplitSource:
    return SplitSource(file=FileSource(path=path, format="tsv", quoting=False, text="sentence",
                                       label="label", label_map=LABELS))


def _days(slice_dir: Path, data: Path) -> list[bytes]:
    """The real SST-2 slice cut into three daily files, plus a header each; day 3 repeats a
    row of day 1 (a cross-file duplicate) and holds a row with an unknown label."""
    lines = (slice_dir / "sst2_glue" / "train.tsv").read_bytes().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    third = len(rows) // 3
    days = [rows[:third], rows[third:2 * third],
            [*rows[2 * third:], rows[5], b"a label from nowhere\t7\n"]]
    (data / "daily").mkdir(parents=True, exist_ok=True)
    (data / "sst2_glue").mkdir(parents=True, exist_ok=True)
    (data / "sst2_glue" / "dev.tsv").write_bytes((slice_dir / "sst2_glue" / "dev.tsv")
                                                  .read_bytes())
    return [header + b"".join(day) for day in days]


def daily_config(data: Path, extra: str = "") -> str:
    """A run config reading `data`'s folder of daily files (`_days`) and its dev file."""
    source = ("{{file: {{path: {}, format: tsv, quoting: false, text: sentence, "
              "label: label, label_map: {{'0': negative, '1': positive}}}}}}")
    return f"""
data:
  dataset: null
  data_dir: {data}
  train: {source.format("daily")}
  eval: {source.format("sst2_glue/dev.tsv")}
  label_names: [negative, positive]
{extra}"""


def _spec(names: list[str] | None):
    return resolve_dataset(None, _source("daily/*.tsv"), _source("sst2_glue/dev.tsv"), names)


def _ingest(data: Path, names: list[str] | None, cache: FileCache | None
            ) -> tuple[pa.Table, pa.Table, IngestSummary]:
    sink = _Collect()
    summary = stream_dataset(_spec(names), data, sink, batch_rows=64, file_cache=cache)
    rejects = sink.table(True, pa.schema([]))
    return sink.table(False, pa.schema([])), rejects, summary


def _fresh(data: Path, names: list[str] | None):
    result = ingest_dataset(_spec(names), data)
    return result.corpus, result.rejects


@pytest.mark.parametrize("names", [["negative", "positive"], None])
def test_a_grown_glob_reuses_the_old_files_and_equals_a_fresh_ingest(
        slice_dir: Path, tmp_path: Path, names: list[str] | None) -> None:
    data, cache = tmp_path / "data", FileCache(tmp_path / "runs" / ".cache")
    days = _days(slice_dir, data)
    for i in (0, 1):
        (data / "daily" / f"day-{i + 1}.tsv").write_bytes(days[i])
    _, _, first = _ingest(data, names, cache)
    assert first.sources[0]["files_parsed"] == 2 and first.sources[0]["files_reused"] == 0
    (data / "daily" / "day-3.tsv").write_bytes(days[2])
    corpus, rejects, summary = _ingest(data, names, cache)
    train = summary.sources[0]
    assert (train["files_reused"], train["files_parsed"]) == (2, 1)
    assert train["rows_reused"] == first.sources[0]["rows_read"] == 200
    assert [f["reused"] for f in train["files"]] == [True, True, False]
    fresh_corpus, fresh_rejects = _fresh(data, names)
    assert corpus.equals(fresh_corpus) and rejects.equals(fresh_rejects)
    # Day 3's repeat of a day-1 row was found through the ids rebuilt from the cache.
    reasons = {r["reason"]: r for r in rejects.to_pylist()}
    assert set(reasons) == {"duplicate_example", "unknown_label"}
    assert reasons["duplicate_example"]["detail"].endswith(f"of {data / 'daily' / 'day-1.tsv'}")


def test_a_changed_old_file_is_parsed_again(slice_dir: Path, tmp_path: Path) -> None:
    data, cache = tmp_path / "data", FileCache(tmp_path / "runs" / ".cache")
    days = _days(slice_dir, data)
    for i in range(3):
        (data / "daily" / f"day-{i + 1}.tsv").write_bytes(days[i])
    _ingest(data, None, cache)
    # Day 2 rewritten under the same name: one row dropped. Day 3 depends on it (dedup).
    (data / "daily" / "day-2.tsv").write_bytes(days[1].rsplit(b"\n", 2)[0] + b"\n")
    corpus, rejects, summary = _ingest(data, None, cache)
    train = summary.sources[0]
    assert [f["reused"] for f in train["files"]] == [True, False, False]
    fresh_corpus, fresh_rejects = _fresh(data, None)
    assert corpus.equals(fresh_corpus) and rejects.equals(fresh_rejects)


def test_a_tampered_cache_entry_is_dropped_and_parsed_again(slice_dir: Path,
                                                             tmp_path: Path) -> None:
    data, cache = tmp_path / "data", FileCache(tmp_path / "runs" / ".cache")
    days = _days(slice_dir, data)
    for i in range(3):
        (data / "daily" / f"day-{i + 1}.tsv").write_bytes(days[i])
    _ingest(data, ["negative", "positive"], cache)
    entries = {json.loads((e / "entry.json").read_text())["meta"]["file"]: e
               for e in (tmp_path / "runs" / ".cache" / FOLDER).iterdir()}
    assert len(entries) == 3  # the evaluation source is one file: not kept per file
    # Day 1's rows rewritten in place with one text changed: a valid Parquet file, another
    # sha256 than its entry recorded.
    part = entries[str(data / "daily" / "day-1.tsv")] / CORPUS
    table = pq.read_table(part)
    texts = table.column("text").to_pylist()
    texts[0] = "a text nobody wrote"
    pq.write_table(table.set_column(table.schema.get_field_index("text"), "text",
                                    pa.array(texts, pa.string())), part)
    corpus, rejects, summary = _ingest(data, ["negative", "positive"], cache)
    train = summary.sources[0]
    assert [f["reused"] for f in train["files"]] == [False, True, True]
    (dropped,) = train["cache_dropped"]
    assert "corpus.parquet" in dropped  # its size no longer matches the entry
    fresh_corpus, fresh_rejects = _fresh(data, ["negative", "positive"])
    assert corpus.equals(fresh_corpus) and rejects.equals(fresh_rejects)
    assert "a text nobody wrote" not in corpus.column("text").to_pylist()
    # The entry was written again from the parse: the next run reuses every file.
    *_, summary = _ingest(data, ["negative", "positive"], cache)
    assert summary.sources[0]["files_reused"] == 3 and "cache_dropped" not in summary.sources[0]
    # An entry record that parses but lacks what an entry holds is dropped too, no crash.
    record = entries[str(data / "daily" / "day-2.tsv")] / "entry.json"
    damaged = json.loads(record.read_text())
    del damaged["meta"]
    record.write_text(json.dumps(damaged))
    *_, summary = _ingest(data, ["negative", "positive"], cache)
    assert [f["reused"] for f in summary.sources[0]["files"]] == [True, False, True]
    (dropped,) = summary.sources[0]["cache_dropped"]
    assert "'meta'" in dropped


def test_the_ingest_stage_manifest_counts_reused_and_parsed_files(
        slice_dir: Path, tmp_path: Path, run_stages) -> None:
    data = tmp_path / "data"
    days = _days(slice_dir, data)
    for i in (0, 1):
        (data / "daily" / f"day-{i + 1}.tsv").write_bytes(days[i])
    config = tmp_path / "cfg.yaml"
    config.write_text(daily_config(data))
    store, _ = run_stages(load_config(config, []), tmp_path / "runs", until="ingest")
    first = store.manifest("ingest")
    assert (first["files_reused"], first["files_parsed"]) == (0, 2)
    (data / "daily" / "day-3.tsv").write_bytes(days[2])
    store, _ = run_stages(load_config(config, []), tmp_path / "runs", until="ingest")
    again = store.manifest("ingest")
    assert (again["files_reused"], again["files_parsed"]) == (2, 1)
    assert again["rows_reused"] == 200 and again["rows_parsed"] == len(days[2].splitlines()) - 1
    assert again["counts"]["rows_out"] == first["counts"]["rows_out"] + 100  # 102 read, 2 rejected
