"""Read raw records from local files and hub splits, one record per input row.

Readers never drop a row silently: a row that cannot be parsed comes back as a
`RawRecord` with a `problem` (reason, field, detail) so that ingest can put it
in the rejects table. A file-level problem (missing file, missing column, empty
file) raises `IngestError` naming the file and the column.

Bytes are decoded as UTF-8 with `surrogateescape`, so one bad byte marks only
its own row as `undecodable_bytes` instead of failing the whole file. A UTF-8
BOM is dropped and CRLF line ends are read as LF.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_core.errors import DataSourceUnavailable, IngestError
from distill_core.hub import require_hub
from distill_core.ingest.sources import FileSource, HubSource

_UNDECODABLE = re.compile("[\udc80-\udcff]")
_RAW_PREVIEW = 200

csv.field_size_limit(sys.maxsize)


@dataclass
class RawRecord:
    """One input row: its 1-based position in the source and its fields, or why it is unusable."""

    row: int
    values: dict[str, Any] = field(default_factory=dict)
    problem: tuple[str, str | None, str] | None = None  # (reason, field, detail)
    raw: str = ""


def has_undecodable(value: Any) -> bool:
    """True when a decoded string still carries bytes that were not valid UTF-8."""
    return isinstance(value, str) and _UNDECODABLE.search(value) is not None


def preview(value: Any) -> str:
    """A short printable form of a raw row for the rejects table."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    try:  # show bytes that were not UTF-8 as \xNN, as they are in the file
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= _RAW_PREVIEW else text[:_RAW_PREVIEW] + "..."


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise IngestError(f"{path}: file not found")
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    text = data.decode("utf-8", errors="surrogateescape")
    return text.replace("\r\n", "\n")


def _require(path: Path | str, available: list[str], required: list[str]) -> None:
    for column in required:
        if column not in available:
            raise IngestError(
                f"{path}: required column {column!r} not found; columns are {available}"
            )


def _required_columns(source: FileSource | HubSource) -> list[str]:
    return [c for c in (source.text, source.text_pair, source.label) if c is not None]


def _read_delimited(path: Path, source: FileSource) -> Iterator[RawRecord]:
    text = _read_text(path)
    delimiter = source.delimiter or ("\t" if source.format == "tsv" else ",")
    quoting = csv.QUOTE_MINIMAL if source.quoting else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting,
                        strict=False)
    if source.header:
        try:
            header = next(reader)
        except StopIteration:
            raise IngestError(f"{path}: file is empty (expected a header line)") from None
        header = [h.strip() for h in header]
        if not any(header):
            raise IngestError(f"{path}: the header line is empty")
    else:
        header = list(source.columns or [])
    _require(path, header, _required_columns(source))
    last_line = reader.line_num
    for fields in reader:
        row = last_line + 1
        last_line = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line is not a row
        raw = delimiter.join(fields)
        if len(fields) != len(header):
            yield RawRecord(
                row=row, raw=preview(raw),
                problem=("malformed_row", None,
                         f"{len(fields)} fields, expected {len(header)} (delimiter {delimiter!r})"),
            )
            continue
        yield RawRecord(row=row, values=dict(zip(header, fields, strict=True)), raw=preview(raw))


def _read_label_text(path: Path, source: FileSource) -> Iterator[RawRecord]:
    """`<label> <text>` per line (Kim's SST files, fastText-like corpora)."""
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        label, _, rest = line.strip().partition(" ")
        yield RawRecord(row=number, values={source.label: label, source.text: rest},
                        raw=preview(line))


def _read_json(path: Path, source: FileSource) -> Iterator[RawRecord]:
    text = _read_text(path)
    if not text.strip():
        raise IngestError(f"{path}: file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise IngestError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    yield from _records_from_objects(path, source, enumerate(data, start=1))


def _read_jsonl(path: Path, source: FileSource) -> Iterator[RawRecord]:
    def objects() -> Iterator[tuple[int, Any]]:
        for number, line in enumerate(_read_text(path).split("\n"), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, _BadJson(str(exc), line)

    yield from _records_from_objects(path, source, objects())


@dataclass
class _BadJson:
    error: str
    line: str


def _records_from_objects(path: Path | str, source: FileSource | HubSource,
                          objects: Any) -> Iterator[RawRecord]:
    required = _required_columns(source)
    seen_good_row = False
    for number, obj in objects:
        if isinstance(obj, _BadJson):
            yield RawRecord(row=number, raw=preview(obj.line),
                            problem=("invalid_json", None, obj.error))
            continue
        if not isinstance(obj, dict):
            yield RawRecord(row=number, raw=preview(obj),
                            problem=("malformed_row", None,
                                     f"expected an object, got {type(obj).__name__}"))
            continue
        if not seen_good_row:
            # The first object stands for the schema: a column missing there is a file error.
            _require(path, list(obj), required)
            seen_good_row = True
        yield RawRecord(row=number, values=obj, raw=preview(obj))
    if not seen_good_row:
        raise IngestError(f"{path}: no rows")


def _read_parquet(path: Path, source: FileSource) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise IngestError(f"{path}: file not found")
    table = pq.read_table(path)
    _require(path, table.column_names, _required_columns(source))
    for number, values in enumerate(table.to_pylist(), start=1):
        yield RawRecord(row=number, values=values, raw=preview(values))


_FILE_READERS = {
    "csv": _read_delimited,
    "tsv": _read_delimited,
    "label_text": _read_label_text,
    "json": _read_json,
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
}


def read_file(path: Path, source: FileSource) -> Iterator[RawRecord]:
    """Records of one local file, in file order."""
    if source.format is None:
        raise IngestError(
            f"{path}: cannot infer the format from the suffix; set `format` to one of "
            f"{sorted(_FILE_READERS)}"
        )
    return _FILE_READERS[source.format](path, source)


def read_hub(source: HubSource) -> Iterator[RawRecord]:
    """Records of one hub split, loaded with `datasets.load_dataset`."""
    import datasets

    label = f"{source.path}" + (f"/{source.name}" if source.name else "") + f":{source.split}"
    advice = "Offline, point TEXTDISTILL_DATA_DIR or --data-dir at a folder with local files."
    if os.environ.get("HF_DATASETS_OFFLINE", "").lower() not in ("1", "true", "yes"):
        require_hub(label, advice)  # fail in seconds, not after the client's retries
    try:
        dataset = datasets.load_dataset(source.path, source.name, split=source.split,
                                        revision=source.revision)
    except Exception as exc:  # the hub client raises many types; all mean "not available"
        raise DataSourceUnavailable(
            f"cannot load {label} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            + advice) from exc
    yield from _records_from_objects(f"hub:{label}", source, enumerate(dataset, start=1))
