"""Each reader on real files: slices of the shared datasets, and the same rows re-encoded."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.ingest.sources import FileSource, SplitSource

# dataset -> (train rows, eval rows, pair task?, number of labels seen in train)
EXPECTED = {
    "sst2": (300, 80, False),
    "sst2_kim": (40, 20, False),
    "sst5_kim": (60, 30, False),
    "ag_news": (40, 40, False),
    "mrpc": (40, 20, True),
    "rte": (40, 20, True),
    "sick": (40, 20, True),
}


def _split(result, name: str) -> pa.Table:
    return result.corpus.filter(pc.equal(result.corpus.column("split"), name))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registered_dataset_reads_real_slice(name: str, slice_dir: Path) -> None:
    train_rows, eval_rows, pair = EXPECTED[name]
    result = ingest_dataset(resolve_dataset(name), slice_dir)
    train, evaluation = _split(result, "train"), _split(result, "eval")
    assert result.rows_in == train_rows + eval_rows
    assert train.num_rows + evaluation.num_rows + result.rejects.num_rows == result.rows_in
    # Slices of clean public releases: at most a few exact repeats, nothing else.
    assert set(result.rejects.column("reason").to_pylist()) <= {"duplicate_example"}
    assert train.num_rows >= train_rows - 2 and evaluation.num_rows >= eval_rows - 2
    texts = result.corpus.column("text").to_pylist()
    assert all(t and t == t.strip() for t in texts)
    assert (result.corpus.column("text_pair").null_count == 0) is pair
    assert set(result.corpus.column("label").to_pylist()) <= set(result.label_names)
    ids = result.corpus.filter(pc.equal(result.corpus.column("split"), "train"))
    assert len(set(ids.column("example_id").to_pylist())) == ids.num_rows


def test_sst2_rows_match_the_file(slice_dir: Path) -> None:
    result = ingest_dataset(resolve_dataset("sst2"), slice_dir)
    first = result.corpus.slice(0, 1).to_pylist()[0]
    assert first["text"] == "hide new secretions from the parental units"  # trailing space gone
    assert first["label"] == "negative" and first["label_id"] == 0
    assert first["source_row"] == 2 and first["source"].endswith("sst2_glue/train.tsv")


def test_ag_news_headerless_csv_maps_labels_1_to_4(slice_dir: Path) -> None:
    result = ingest_dataset(resolve_dataset("ag_news"), slice_dir)
    evaluation = _split(result, "eval").to_pylist()
    assert evaluation[0]["label"] == "Business"  # class 3 in the file
    assert evaluation[0]["text"].startswith("Unions representing workers")
    assert result.label_names == ["World", "Sports", "Business", "Sci/Tech"]


def test_mrpc_bom_header_and_pairs(slice_dir: Path) -> None:
    assert (slice_dir / "mrpc/train.tsv").read_bytes().startswith(b"\xef\xbb\xbf")
    result = ingest_dataset(resolve_dataset("mrpc"), slice_dir)
    row = result.corpus.slice(0, 1).to_pylist()[0]
    assert row["text"].startswith("Amrozi accused his brother")
    assert row["text_pair"].startswith("Referring to him as only")
    assert row["label"] == "paraphrase"


def test_crlf_file_reads_like_lf(slice_dir: Path, tmp_path: Path) -> None:
    crlf = slice_dir / "sst2_glue/test_labeled_UNOFFICIAL.tsv"
    assert b"\r\n" in crlf.read_bytes()
    lf = tmp_path / "lf.tsv"
    lf.write_bytes(crlf.read_bytes().replace(b"\r\n", b"\n"))

    def read(path: Path):
        source = SplitSource(file=FileSource(path=str(path), quoting=False, text="sentence",
                                             label="label"))
        return ingest_dataset(resolve_dataset(None, source, source), None)

    a, b = read(crlf), read(lf)
    assert a.corpus.column("text").to_pylist() == b.corpus.column("text").to_pylist()
    assert all("\r" not in t for t in a.corpus.column("label").to_pylist())
    assert a.corpus.num_rows == 40  # 20 rows in each of the two splits read from the file


def _sst2_rows(slice_dir: Path) -> list[dict]:
    lines = (slice_dir / "sst2_glue/train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [{"sentence": s, "label": int(lab)} for s, lab in (ln.split("\t") for ln in lines)]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet", "csv"])
def test_other_formats_give_the_same_ids(fmt: str, slice_dir: Path, tmp_path: Path) -> None:
    rows = _sst2_rows(slice_dir)
    path = tmp_path / f"train.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        import csv

        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, ["sentence", "label"])
            writer.writeheader()
            writer.writerows(rows)
    label_map = {"0": "negative", "1": "positive"}
    source = SplitSource(file=FileSource(path=str(path), text="sentence", label="label",
                                         label_map=label_map))
    tsv = ingest_dataset(resolve_dataset("sst2"), slice_dir)
    other = ingest_dataset(resolve_dataset(None, source, source), None)
    expected = _split(tsv, "train").column("example_id").to_pylist()
    assert _split(other, "train").column("example_id").to_pylist() == expected


def test_hub_source_fails_fast_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from distill_core.errors import DataSourceUnavailable
    from distill_core.ingest.ingest import ingest_dataset as ingest

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(DataSourceUnavailable, match="TEXTDISTILL_DATA_DIR"):
        ingest(resolve_dataset("sst2"), None)
    assert time.perf_counter() - start < 60
