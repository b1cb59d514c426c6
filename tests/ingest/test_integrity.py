"""Issue 17: ingest gives no silent wrong answers.

One label rule (numbers compare as numbers), non-scalar values and long texts rejected per row,
duplicated columns and odd files named as such, encodings and compression read or refused with
a message that says what to do.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import gzip
import json
import os
import signal
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from distill_core.errors import ConfigError, IngestError
from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.ingest.ingest import resolve_sources
from distill_core.ingest.normalize import label_key
from distill_core.ingest.sources import DEFAULT_MAX_CHARS, FileSource, SplitSource

BINARY = {"0": "negative", "1": "positive"}


def _source(path: Path, **options) -> SplitSource:
    options.setdefault("text", "text")
    options.setdefault("label", "label")
    return SplitSource(file=FileSource(path=str(path), **options))


def _ingest(train: Path, evaluation: Path | None = None, *, max_chars: int | None = None,
            **options):
    spec = resolve_dataset(None, _source(train, **options),
                           _source(evaluation or train, **options))
    return ingest_dataset(spec, None, max_chars=max_chars)


def _rows(result, split: str = "train") -> list[dict]:
    return [r for r in result.corpus.to_pylist() if r["split"] == split]


def _rejects(result, split: str = "train") -> list[tuple[int, str | None, str]]:
    return [(r["source_row"], r["field"], r["reason"]) for r in result.rejects.to_pylist()
            if r["split"] == split]


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _jsonl(path: Path, rows: list) -> Path:
    return _write(path, "".join(json.dumps(r) + "\n" for r in rows))


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail instead of hanging when a reader opens a FIFO or reads /dev/zero."""
    def expire(*_):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- one label rule -------------------------------------------------------------------------

def test_label_rule() -> None:
    for same in (1, 1.0, "1", " 1 ", "1.0", "01", "+1", "1e0", "1.", " 1.000\t"):
        assert label_key(same) == "1", same
    assert label_key(0.5) == label_key("0.50") == label_key(".5") == "0.5"
    assert label_key(-0.0) == label_key("-0") == "0"
    assert label_key(" pos ") == "pos" and label_key("Pos") == "Pos"  # stripped, case kept
    assert label_key(True) == "true" and label_key("1_000") == "1_000"  # not a plain number
    assert label_key("\u0661") == "\u0661"  # only ASCII digits make a number
    for missing in (None, float("nan"), "", "  ", "NaN", "null", "None"):
        assert label_key(missing) is None


def test_one_and_one_point_zero_in_a_csv_are_one_class(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.csv",
                  "text,label\na,1.0\nb,1\nc, 1 \nd,0\ne,0.0\nf,2.50\ng,2.5\n")
    result = _ingest(path)
    assert result.label_names == ["0", "1", "2.5"]  # canonical number names, numeric order
    assert [r["label"] for r in _rows(result)] == ["1", "1", "1", "0", "0", "2.5", "2.5"]
    assert _rejects(result) == []


def test_label_map_keyed_1_matches_labels_written_1_0(tmp_path: Path) -> None:
    csv_file = _write(tmp_path / "rows.csv", "text,label\na,1.0\nb, 0.0 \nc,1\nd,7.0\n")
    result = _ingest(csv_file, label_map=BINARY)
    assert [r["label"] for r in _rows(result)] == ["positive", "negative", "positive"]
    assert _rejects(result) == [(5, "label", "unknown_label")]
    json_file = _jsonl(tmp_path / "rows.jsonl", [{"text": "a", "label": 1.0},
                                                 {"text": "b", "label": "0.0"}])
    assert [r["label"] for r in _rows(_ingest(json_file, label_map={"1.0": "positive",
                                                                   "0": "negative"}))] == [
        "positive", "negative"]


def test_label_map_with_two_keys_for_one_label_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"'1' and '1\.0' are the same label"):
        FileSource(path="x.csv", text="text", label="label",
                   label_map={"1": "positive", "1.0": "negative"})
    FileSource(path="x.csv", text="text", label="label",  # the same name twice is harmless
               label_map={"1": "positive", "1.0": "positive"})


def test_given_label_names_match_by_the_label_rule(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.csv", "text,label\na,1\nb,2.0\nc, 2 \nd,3\n")
    spec = resolve_dataset(None, _source(path), _source(path), label_names=["2.0", "1"])
    result = ingest_dataset(spec, None)
    assert result.label_names == ["2.0", "1"]  # names as given, in the given order
    assert [(r["label"], r["label_id"]) for r in _rows(result)] == [
        ("1", 1), ("2.0", 0), ("2.0", 0)]
    assert _rejects(result) == [(5, "label", "unknown_label")]
    twice = resolve_dataset(None, _source(path), _source(path), label_names=["1", "1.0"])
    with pytest.raises(ConfigError, match=r"label_names '1' and '1\.0' are the same label"):
        ingest_dataset(twice, None)


def test_string_labels_are_stripped_not_case_folded(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.csv", "text,label\na, pos \nb,pos\nc,Pos\nd,neg\n")
    result = _ingest(path)
    assert result.label_names == ["Pos", "neg", "pos"]
    assert [r["label"] for r in _rows(result)] == ["pos", "pos", "Pos", "neg"]


# --- non-scalar values -----------------------------------------------------------------------

def test_objects_and_lists_are_not_a_scalar(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "rows.jsonl", [
        {"text": "fine", "label": 1},
        {"text": "odd", "label": {"name": "negative"}},
        {"text": "odd", "label": ["negative"]},
        {"text": {"body": "a film"}, "label": 0},
        {"text": ["a", "film"], "label": 0},
        {"text": "dull", "label": 0},
    ])
    result = _ingest(path, label_map=BINARY)
    assert _rejects(result) == [(2, "label", "not_a_scalar"), (3, "label", "not_a_scalar"),
                                (4, "text", "not_a_scalar"), (5, "text", "not_a_scalar")]
    assert result.label_names == ["negative", "positive"]
    assert [r["text"] for r in _rows(result)] == ["fine", "dull"]


def test_parquet_list_and_struct_values_are_not_a_scalar(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", "text,label\ngood,1\nbad,0\n")
    lists = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": [[1], [0, 1]]}), lists)
    structs = tmp_path / "structs.parquet"
    pq.write_table(pa.table({"text": [{"body": "a"}, {"body": "b"}], "label": [1, 0]}), structs)
    for path, column in ((lists, "label"), (structs, "text")):
        result = _ingest(train, path, label_map=BINARY)
        assert _rejects(result, "eval") == [(1, column, "not_a_scalar"),
                                            (2, column, "not_a_scalar")]
        assert _rows(result, "eval") == []


def test_parquet_binary_text_is_read_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": pa.array([b"caf\xc3\xa9", b"bad \xff"], pa.binary()),
                             "label": [1, 0]}), path)
    result = _ingest(_write(tmp_path / "t.csv", "text,label\na,1\nb,0\n"), path,
                     label_map=BINARY)
    assert [r["text"] for r in _rows(result, "eval")] == ["café"]
    assert _rejects(result, "eval") == [(2, "text", "undecodable_bytes")]


# --- duplicated columns ---------------------------------------------------------------------

@pytest.mark.parametrize("name,header", [("rows.csv", "text,label,text"),
                                         ("rows.tsv", "text\tlabel\ttext")])
def test_duplicated_header_column_is_an_error(tmp_path: Path, name: str, header: str) -> None:
    sep = "," if name.endswith("csv") else "\t"
    path = _write(tmp_path / name, f"{header}\n" + sep.join(["a", "1", "b"]) + "\n")
    with pytest.raises(IngestError) as info:
        _ingest(path)
    message = str(info.value)
    assert str(path) in message and "'text' more than once" in message and "rename" in message


def test_duplicated_parquet_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array([1]), pa.array(["b"])],
                                 names=["text", "label", "text"])
    pq.write_table(table, path)
    with pytest.raises(IngestError, match=r"rows\.parquet.*'text' more than once"):
        _ingest(path)


def test_columns_option_naming_a_column_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"`columns` names \['text'\] more than once"):
        FileSource(path="x.csv", header=False, columns=["text", "label", "text"], text="text",
                   label="label")


def test_json_object_with_a_repeated_key_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.jsonl",
                  '{"text": "good", "label": 1}\n'
                  '{"text": "first", "label": 1, "text": "second"}\n'
                  '{"text": "bad", "label": 0, "note": 1, "note": 2}\n')
    result = _ingest(path, label_map=BINARY)
    assert _rejects(result) == [(2, "text", "malformed_row")]  # an unused key may repeat
    assert [r["text"] for r in _rows(result)] == ["good", "bad"]


# --- missing keys ----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_a_missing_key_is_a_row_reject_even_in_the_first_row(tmp_path: Path, fmt: str) -> None:
    rows = [{"text": "no label"}, {"text": "good", "label": 1}, {"label": 0},
            {"text": "bad", "label": 0}]
    path = tmp_path / f"rows.{fmt}"
    _jsonl(path, rows) if fmt == "jsonl" else _write(path, json.dumps(rows))
    result = _ingest(path, label_map=BINARY)
    assert _rejects(result) == [(1, "label", "missing_field"), (3, "text", "missing_field")]
    detail = result.rejects.to_pylist()[0]["detail"]
    assert "'label'" in detail and "['text']" in detail
    assert [r["text"] for r in _rows(result)] == ["good", "bad"]


def test_a_key_no_row_has_is_a_file_error(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "rows.jsonl", [{"text": "a", "stars": 1}, {"text": "b"}])
    with pytest.raises(IngestError, match=r"rows\.jsonl: required column 'label' not found in "
                                          r"any row; the first row's keys are \['text', 'stars'\]"):
        _ingest(path)


# --- encodings -------------------------------------------------------------------------------

CSV_TEXT = "text,label\ncafé crème,1\nnaïve plot,0\n"


@pytest.mark.parametrize("codec,bom", [("utf-16-le", codecs.BOM_UTF16_LE),
                                       ("utf-16-be", codecs.BOM_UTF16_BE),
                                       ("utf-32-le", codecs.BOM_UTF32_LE),
                                       ("utf-8", codecs.BOM_UTF8)])
def test_text_with_a_bom_is_decoded(tmp_path: Path, codec: str, bom: bytes) -> None:
    path = _write(tmp_path / "rows.csv", bom + CSV_TEXT.replace("\n", "\r\n").encode(codec))
    result = _ingest(path, label_map=BINARY)
    assert [(r["text"], r["label"]) for r in _rows(result)] == [
        ("café crème", "positive"), ("naïve plot", "negative")]


@pytest.mark.parametrize("codec,advice", [("utf-16-le", "encoding: utf-16-le"),
                                          ("utf-16-be", "encoding: utf-16-be")])
def test_utf16_without_bom_is_named_not_read_as_garbage(tmp_path: Path, codec: str,
                                                        advice: str) -> None:
    path = _write(tmp_path / "rows.csv", CSV_TEXT.encode(codec))
    with pytest.raises(IngestError) as info:
        _ingest(path)
    message = str(info.value)
    assert str(path) in message and "UTF-16" in message and f"`{advice}`" in message
    result = _ingest(path, encoding=codec, label_map=BINARY)  # the advice works
    assert [r["text"] for r in _rows(result)] == ["café crème", "naïve plot"]


def test_latin1_only_on_request(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.csv",
                  "text,label\ncafé,1\nplain,0\nnaïve,0\ngood,1\n".encode("latin-1"))
    result = _ingest(path, encoding="latin-1", label_map=BINARY)
    assert [r["text"] for r in _rows(result)] == ["café", "plain", "naïve", "good"]
    default = _ingest(path, label_map=BINARY)  # read as UTF-8: those rows are named, not mangled
    assert _rejects(default) == [(2, "text", "undecodable_bytes"), (4, "text", "undecodable_bytes")]
    assert "`encoding:`" in default.rejects.to_pylist()[0]["detail"]


def test_encoding_and_max_chars_are_part_of_the_source_identity(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.csv", CSV_TEXT)
    plain = FileSource(path=str(path), text="text", label="label")
    assert "encoding" not in plain.model_dump() and "max_chars" not in plain.model_dump()
    latin = FileSource(path=str(path), text="text", label="label", encoding="latin-1",
                       max_chars=500)
    assert latin.model_dump(mode="json")["encoding"] == "latin-1"
    assert latin.model_dump()["max_chars"] == 500
    spec = resolve_dataset(None, SplitSource(file=latin), SplitSource(file=plain))
    dumped = [s.columns.model_dump() for s in resolve_sources(spec, None)]
    assert dumped[0] != dumped[1]
    with pytest.raises(ValidationError, match="unknown encoding 'klingon'"):
        FileSource(path="x.csv", text="text", label="label", encoding="klingon")


# --- compression -----------------------------------------------------------------------------

def _zstd(data: bytes, path: Path) -> None:
    with pa.CompressedOutputStream(str(path), "zstd") as out:
        out.write(data)


ROWS = [{"text": "a fine film", "label": 1}, {"text": "a dull film", "label": 0},
        {"text": "  spaced  ", "label": "1.0"}]


def _plain(fmt: str) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in ROWS).encode()
    if fmt == "json":
        return json.dumps(ROWS).encode()
    if fmt == "label_text":
        return "".join(f"{r['label']} {r['text']}\n" for r in ROWS).encode()
    sep = "," if fmt == "csv" else "\t"
    return (f"text{sep}label\n" + "".join(f"{r['text']}{sep}{r['label']}\r\n"
                                          for r in ROWS)).encode()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "label_text"])
@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_files_read_like_plain_ones(tmp_path: Path, fmt: str, suffix: str) -> None:
    name = "train.txt" if fmt == "label_text" else f"train.{fmt}"
    options = {"format": "label_text"} if fmt == "label_text" else {}
    plain = _write(tmp_path / name, _plain(fmt))
    packed = tmp_path / (name + suffix)
    if suffix == ".gz":
        _write(packed, gzip.compress(_plain(fmt)))
    else:
        _zstd(_plain(fmt), packed)
    assert FileSource(path=str(packed), text="t", label="l", **options).format == fmt
    expected, got = _ingest(plain, **options), _ingest(packed, **options)
    assert [r["example_id"] for r in _rows(got)] == [r["example_id"] for r in _rows(expected)]
    assert [r["label"] for r in _rows(got)] == ["1", "0", "1"]
    assert got.sources[0]["sha256"] != expected.sources[0]["sha256"]  # the file as stored


def test_real_slice_gzipped_and_utf16_gives_the_same_ids(slice_dir: Path, tmp_path: Path) -> None:
    original = slice_dir / "sst2_glue/train.tsv"
    packed = _write(tmp_path / "train.tsv.gz", gzip.compress(original.read_bytes()))
    wide = _write(tmp_path / "train.tsv",
                  codecs.BOM_UTF16_LE + original.read_text(encoding="utf-8").encode("utf-16-le"))
    expected = ingest_dataset(resolve_dataset("sst2"), slice_dir)
    ids = expected.corpus.filter(pc.equal(expected.corpus.column("split"), "train"))
    for path in (packed, wide):
        got = _ingest(path, text="sentence", quoting=False, label_map=BINARY)
        assert [r["example_id"] for r in _rows(got)] == ids.column("example_id").to_pylist()


@pytest.mark.parametrize("packer,what", [(gzip.compress, "gzip-compressed.*\\.gz suffix"),
                                         (bz2.compress, "bzip2-compressed")])
def test_a_compressed_file_without_its_suffix_is_named(tmp_path: Path, packer, what) -> None:
    path = _write(tmp_path / "rows.csv", packer(CSV_TEXT.encode()))
    with pytest.raises(IngestError, match=rf"rows\.csv: the file is {what}"):
        _ingest(path)


def test_a_broken_gzip_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.jsonl.gz", gzip.compress(_plain("jsonl") * 50)[:60])
    with pytest.raises(IngestError, match=r"rows\.jsonl\.gz: cannot be decompressed"):
        _ingest(path)


def test_a_compressed_parquet_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="Parquet compresses inside"):
        FileSource(path="rows.parquet.gz", text="text", label="label")


# --- special files ---------------------------------------------------------------------------

def _special(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "train.csv"
    if kind == "a directory":
        path.mkdir()
    elif kind == "a FIFO":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    return path


@pytest.mark.parametrize("kind", ["a directory", "a FIFO", "a device"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_special_files_are_named_never_opened(tmp_path: Path, kind: str, fmt: str) -> None:
    path = _special(tmp_path, kind)
    with _deadline(20), pytest.raises(IngestError) as info:
        _ingest(path, format=fmt)
    assert str(info.value).startswith(str(path))
    assert f"is {kind}, not a data file" in str(info.value)
    if kind == "a device":
        assert "link to /dev/zero" in str(info.value)
    (resolved,) = resolve_sources(resolve_dataset(None, _source(path), _source(path)), None)[:1]
    with _deadline(20), pytest.raises(IngestError, match=f"is {kind}"):
        resolved.identity()  # the fingerprint does not read it either


def test_a_broken_link_is_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.symlink_to(tmp_path / "gone.csv")
    with pytest.raises(IngestError, match=r"rows\.csv: file not found \(a link to .*gone\.csv\)"):
        _ingest(path)


# --- max_chars -------------------------------------------------------------------------------

def test_texts_over_max_chars_are_too_long(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.tsv",
                  "text\tpair\tlabel\n"
                  f"{'x' * 11}\tshort\t1\n"      # row 2: text too long
                  f"short\t{'y' * 11}\t0\n"      # row 3: pair too long
                  f"fine\tpair\t{'1' * 11}\n"    # row 4: label too long
                  f"{'z' * 10}\tpair\t0\n"       # row 5: exactly the limit
                  "ok\tpair\t1\n")
    result = _ingest(path, text_pair="pair", max_chars=10)
    assert _rejects(result) == [(2, "text", "too_long"), (3, "pair", "too_long"),
                                (4, "label", "too_long")]
    assert "11 characters, more than max_chars (10)" in result.rejects.to_pylist()[0]["detail"]
    assert [r["source_row"] for r in _rows(result)] == [5, 6]


def test_max_chars_default_argument_and_source_option(tmp_path: Path) -> None:
    rows = [{"text": "a" * (DEFAULT_MAX_CHARS + 1), "label": 1},
            {"text": "b" * DEFAULT_MAX_CHARS, "label": 1},
            {"text": "c" * 50, "label": 0}, {"text": "short", "label": 0},
            {"text": "tiny", "label": 1}]
    path = _jsonl(tmp_path / "rows.jsonl", rows)
    assert _rejects(_ingest(path)) == [(1, "text", "too_long")]                  # default
    assert _rejects(_ingest(path, max_chars=40)) == [                            # argument
        (1, "text", "too_long"), (2, "text", "too_long"), (3, "text", "too_long")]
    own = resolve_dataset(None, _source(path, max_chars=200_000), _source(path))
    result = ingest_dataset(own, None, max_chars=40)  # the source's own limit wins over it
    assert _rejects(result, "train") == []
    assert _rejects(result, "eval") == [(1, "text", "too_long"), (2, "text", "too_long"),
                                        (3, "text", "too_long")]


def test_a_long_single_row_is_rejected_cheaply(tmp_path: Path) -> None:
    text = "wörd " * 800_000  # 4 M characters on one line
    path = _write(tmp_path / "big.csv", f"text,label\n{text},1\nshort,0\nother,1\n")
    size = path.stat().st_size
    del text
    tracemalloc.start()
    try:
        result = _ingest(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert _rejects(result) == [(2, "text", "too_long")]
    assert all(len(r["raw"]) <= 203 for r in result.rejects.to_pylist())
    # Reading both splits of a one-row file costs a few copies of that row, not dozens.
    assert peak < 8 * size, f"peak {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"


# --- hub splits go through the same checks ---------------------------------------------------

def test_hub_rows_follow_the_same_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from distill_core.ingest.sources import HubSource

    rows = datasets.Dataset.from_list([{"sentence": "good", "label": 1.0, "tags": ["a"]},
                                       {"sentence": "bad", "label": 0.0, "tags": []},
                                       {"sentence": "x" * 30, "label": 1.0, "tags": []}])
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: rows)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")

    def hub(label: str) -> SplitSource:
        return SplitSource(hub=HubSource(path="someone/films", split="train", text="sentence",
                                         label=label, label_map=BINARY))

    result = ingest_dataset(resolve_dataset(None, hub("label"), hub("label")), None,
                            max_chars=20)
    assert [r["label"] for r in _rows(result)] == ["positive", "negative"]
    assert _rejects(result) == [(3, "sentence", "too_long")]
    lists = ingest_dataset(resolve_dataset(None, hub("label"), hub("tags")), None)
    assert _rejects(lists, "eval") == [(1, "tags", "not_a_scalar"), (2, "tags", "not_a_scalar"),
                                       (3, "tags", "not_a_scalar")]
    with pytest.raises(IngestError, match=r"hub:someone/films:train: required column 'stars'"):
        ingest_dataset(resolve_dataset(None, hub("stars"), hub("stars")), None)
