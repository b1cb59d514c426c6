"""Bad input: every bad row lands in rejects with its reason, row and field; file-level
problems raise an error that names the file and the column."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_core.errors import IngestError
from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.ingest.sources import FileSource, SplitSource

LABELS = {"0": "negative", "1": "positive"}


def _ingest(train: Path, evaluation: Path | None = None, label_map: dict | None = LABELS,
            **options):
    def source(path: Path) -> SplitSource:
        return SplitSource(file=FileSource(path=str(path), text="sentence", label="label",
                                           label_map=label_map, **options))

    spec = resolve_dataset(None, source(train), source(evaluation or train))
    return ingest_dataset(spec, None)


def _rejects(result) -> list[dict]:
    return [r for r in result.rejects.to_pylist() if r["split"] == "train"]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_row_problems_are_rejected_with_reason_row_and_field(tmp_path: Path) -> None:
    data = (b"sentence\tlabel\n"
            b"a fine film\t1\n"          # row 2 ok
            b"   \t0\n"                  # row 3 empty text
            b"no label here\t\n"         # row 4 missing label
            b"a label from nowhere\t7\n"  # row 5 unknown label
            b"bad \xff\xfe bytes\t0\n"   # row 6 undecodable
            b"too\tmany\tfields\n"       # row 7 malformed
            b"A  Fine Film \t1\n"        # row 8 duplicate of row 2 after normalisation
            b"a dull film\t0\n")         # row 9 ok
    result = _ingest(_write(tmp_path / "bad.tsv", data), quoting=False)
    rejects = {r["source_row"]: r for r in _rejects(result)}
    assert {row: r["reason"] for row, r in rejects.items()} == {
        3: "empty_text", 4: "missing_label", 5: "unknown_label", 6: "undecodable_bytes",
        7: "malformed_row", 8: "duplicate_example"}
    assert rejects[3]["field"] == "sentence" and rejects[4]["field"] == "label"
    assert rejects[6]["field"] == "sentence" and "\\xff" in rejects[6]["raw"]
    assert "row 2" in rejects[8]["detail"]
    assert all(r["source"].endswith("bad.tsv") for r in rejects.values())
    train = [r for r in result.corpus.to_pylist() if r["split"] == "train"]
    assert [r["source_row"] for r in train] == [2, 9]
    assert len(train) + len(rejects) == 8  # every data row accounted for


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "nolabel.tsv", b"sentence\tscore\na film\t1\n")
    with pytest.raises(IngestError) as info:
        _ingest(path, quoting=False)
    assert str(path) in str(info.value) and "'label'" in str(info.value)


def test_missing_column_in_jsonl_names_file_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.jsonl", b'{"text": "a film", "label": 1}\n')
    with pytest.raises(IngestError, match=r"rows\.jsonl.*'sentence'"):
        _ingest(path)


@pytest.mark.parametrize("content", [b"", b"sentence\tlabel\n"])
def test_empty_file_or_header_only_is_an_error(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(IngestError, match="empty|no usable training rows"):
        _ingest(_write(tmp_path / "empty.tsv", content), quoting=False)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="file not found"):
        _ingest(tmp_path / "nope.tsv")


def test_invalid_json_line_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.jsonl",
                  b'{"sentence": "good", "label": 1}\n{"sentence": "broken\n'
                  b'{"sentence": "bad", "label": 0}\n')
    result = _ingest(path)
    assert [(r["source_row"], r["reason"]) for r in _rejects(result)] == [(2, "invalid_json")]


def test_nan_and_mixed_type_labels_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"sentence": ["good", "bad", "odd", "fine"],
                             "label": [1.0, 0.0, float("nan"), 1.0]}), path)
    result = _ingest(path)
    assert [(r["source_row"], r["reason"]) for r in _rejects(result)] == [(3, "missing_label")]
    assert [r["label"] for r in result.corpus.to_pylist() if r["split"] == "train"] == [
        "positive", "negative", "positive"]


def test_string_and_integer_labels_are_the_same_label(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.json", b'[{"sentence": "a", "label": 1}, '
                  b'{"sentence": "b", "label": "1"}, {"sentence": "c", "label": " 0 "}]')
    result = _ingest(path)
    assert [r["label"] for r in result.corpus.to_pylist() if r["split"] == "train"] == [
        "positive", "positive", "negative"]


def test_eval_label_unseen_in_training_is_rejected(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", b"sentence,label\ngood,pos\nbad,neg\n")
    evaluation = _write(tmp_path / "eval.csv", b"sentence,label\nmeh,neutral\nok,pos\n")
    result = _ingest(train, evaluation, label_map=None)
    assert result.label_names == ["neg", "pos"]
    rejects = [r for r in result.rejects.to_pylist() if r["split"] == "eval"]
    assert [(r["source_row"], r["reason"]) for r in rejects] == [(2, "unknown_label")]


def test_quoted_csv_with_embedded_newline_keeps_row_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.csv",
                  b'sentence,label\n"two\nlines",1\n"",0\nlast,0\n')
    result = _ingest(path)
    assert [(r["source_row"], r["reason"]) for r in _rejects(result)] == [(4, "empty_text")]
    rows = [r for r in result.corpus.to_pylist() if r["split"] == "train"]
    assert [(r["source_row"], r["text"]) for r in rows] == [(2, "two\nlines"), (5, "last")]


def test_a_single_class_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "one.csv", b"sentence,label\ngood,1\nfine,1\n")
    with pytest.raises(IngestError, match=r"one\.csv.*'positive'.*two classes"):
        _ingest(path)


def test_wrong_delimiter_is_a_missing_column_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "commas.tsv", b"sentence,label\ngood film,1\n")
    with pytest.raises(IngestError, match=r"commas\.tsv.*'sentence'.*sentence,label"):
        _ingest(path, quoting=False)


def test_a_one_megabyte_row_is_read(tmp_path: Path) -> None:
    long_text = ("word " * 200_000).strip().encode()
    path = _write(tmp_path / "long.tsv", b"sentence\tlabel\n" + long_text + b"\t1\nshort\t0\n")
    result = _ingest(path, quoting=False, max_chars=2_000_000)  # over the default limit
    lengths = sorted(len(r["text"]) for r in result.corpus.to_pylist() if r["split"] == "train")
    assert lengths == [5, len(long_text)]


def test_no_usable_row_names_the_reasons_and_for_foreign_labels_the_ones_expected(
        tmp_path: Path) -> None:
    path = _write(tmp_path / "train.tsv", b"sentence\tlabel\na film\tgood\nanother film\tbad\n")
    source = SplitSource(file=FileSource(path=str(path), text="sentence", label="label",
                                         quoting=False))
    spec = resolve_dataset(None, source, source, ["neg", "pos"])
    with pytest.raises(IngestError) as info:
        ingest_dataset(spec, None)
    assert str(info.value) == (
        f"{path}: no usable training rows (2 rejected: unknown_label 2); the labels must be "
        "neg, pos (the dataset's label names): map them with the source's label_map, or set "
        "data.dataset: null for your own labels")
