"""Read raw records from local files and hub splits, one record per input row.

Readers never drop a row silently: a row that cannot be parsed comes back as a
`RawRecord` with a `problem` (reason, field, detail) so that ingest can put it
in the rejects table. A file-level problem (missing file, a directory or device
given as the file, a column no row has, duplicated column names, an empty file)
raises `IngestError` naming the file and what to do.

Text files are streamed line by line. `.gz` and `.zst` files are decompressed
on the fly; the suffix before them names the format (`train.jsonl.gz`). Bytes
are decoded as UTF-8 with `surrogateescape`, so one bad byte marks only its own
row as `undecodable_bytes` instead of failing the whole file; a UTF-8 BOM is
dropped, a UTF-16 or UTF-32 BOM selects that encoding, and the source's
`encoding` option selects any other. CRLF line ends are read as LF.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from distill_core.errors import DataSourceUnavailable, IngestError
from distill_core.hub import require_hub
from distill_core.ingest.sources import FileSource, HubSource
from distill_core.ingest.textfiles import check_data_file, text_lines

_UNDECODABLE = re.compile("[\udc80-\udcff]")
_RAW_PREVIEW = 200
_PARQUET_BATCH = 4096

csv.field_size_limit(sys.maxsize)

class RawRecord:
    """One input row: its 1-based position in the source and its fields, or why it is unusable.

    `raw` is the short printable form a reject shows. Most rows are never rejected, so a
    reader may give what the preview is made from (`raw_from`, with its `previewer`) instead,
    and the preview is made only when `raw` is read.
    """

    __slots__ = ("row", "values", "problem", "_raw", "_raw_from", "_previewer")

    def __init__(self, row: int, values: dict[str, Any] | None = None,
                 problem: tuple[str, str | None, str] | None = None,  # (reason, field, detail)
                 raw: str = "", raw_from: Any = None,
                 previewer: Callable[[Any], str] | None = None) -> None:
        self.row = row
        self.values = values if values is not None else {}
        self.problem = problem
        self._raw = raw
        self._raw_from = raw_from
        self._previewer = previewer

    @property
    def raw(self) -> str:
        if self._previewer is not None:
            self._raw = self._previewer(self._raw_from)
            self._previewer = self._raw_from = None
        return self._raw


def has_undecodable(value: Any) -> bool:
    """True when a decoded string still carries bytes that were not valid UTF-8."""
    return isinstance(value, str) and _UNDECODABLE.search(value) is not None


def _shorten(value: Any, depth: int = 0) -> Any:
    """`value` with long strings cut, so that a preview never copies a huge row."""
    limit = 2 * _RAW_PREVIEW
    if isinstance(value, str):
        return value[:limit]
    if depth > 3:
        return value
    if isinstance(value, dict):
        return {k: _shorten(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, depth + 1) for v in value[:limit]]
    return value


def preview(value: Any) -> str:
    """A short printable form of a raw row for the rejects table."""
    value = _shorten(value)  # what is cut lies past the first _RAW_PREVIEW characters
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    try:  # show bytes that were not UTF-8 as \xNN, as they are in the file
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= _RAW_PREVIEW else text[:_RAW_PREVIEW] + "..."


def short_repr(value: Any) -> str:
    """repr() of a value for a reject's detail, cut to a readable length."""
    text = repr(_shorten(value))
    return text if len(text) <= _RAW_PREVIEW else text[:_RAW_PREVIEW] + "..."


def _require(path: Path | str, available: list[str], required: list[str]) -> None:
    for column in required:
        if column not in available:
            raise IngestError(
                f"{path}: required column {column!r} not found; columns are {available}"
            )


def _no_repeated_columns(path: Path | str, columns: list[str]) -> None:
    # Empty names (a trailing delimiter in the header) cannot be mapped, so they may repeat.
    repeated = [c for c, n in Counter(columns).items() if n > 1 and c != ""]
    if repeated:
        raise IngestError(
            f"{path}: the header names column {repeated[0]!r} more than once "
            f"({columns.count(repeated[0])} times); rename the duplicates so that each column "
            "has its own name")


def _required_columns(source: FileSource | HubSource) -> list[str]:
    return [c for c in (source.text, source.text_pair, source.label) if c is not None]


def _joined_preview(fields: list[str], delimiter: str) -> str:
    """preview(delimiter.join(fields)) without joining a huge row."""
    parts: list[str] = []
    size = 0
    for value in fields:
        parts.append(value[:2 * _RAW_PREVIEW])
        size += len(parts[-1]) + len(delimiter)
        if size > 2 * _RAW_PREVIEW:
            break
    return preview(delimiter.join(parts))


def _read_delimited(path: Path, source: FileSource) -> Iterator[RawRecord]:
    delimiter = source.delimiter or ("\t" if source.format == "tsv" else ",")
    quoting = csv.QUOTE_MINIMAL if source.quoting else csv.QUOTE_NONE
    reader = csv.reader(text_lines(path, source, newline=""), delimiter=delimiter, quoting=quoting,
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
    _no_repeated_columns(path, header)
    joined = partial(_joined_preview, delimiter=delimiter)
    last_line = reader.line_num
    for fields in reader:
        row = last_line + 1
        last_line = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line is not a row
        if len(fields) != len(header):
            yield RawRecord(
                row=row, raw=_joined_preview(fields, delimiter),
                problem=("malformed_row", None,
                         f"{len(fields)} fields, expected {len(header)} (delimiter {delimiter!r})"),
            )
            continue
        yield RawRecord(row=row, values=dict(zip(header, fields, strict=True)), raw_from=fields,
                        previewer=joined)


def _read_label_text(path: Path, source: FileSource) -> Iterator[RawRecord]:
    """`<label> <text>` per line (Kim's SST files, fastText-like corpora)."""
    for number, line in enumerate(text_lines(path, source, newline="\n"), start=1):
        line = line.removesuffix("\n")
        if not line.strip():
            continue
        label, _, rest = line.strip().partition(" ")
        yield RawRecord(row=number, values={source.label: label, source.text: rest},
                        raw_from=line, previewer=preview)


class _Object(dict):
    """A JSON object that remembers the keys it held more than once (the last value wins)."""

    repeated: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        obj.repeated = tuple(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return obj


def _read_json(path: Path, source: FileSource) -> Iterator[RawRecord]:
    text = "".join(text_lines(path, source, newline=""))
    if not text.strip():
        raise IngestError(f"{path}: file is empty")
    try:
        data = json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise IngestError(f"{path}: not readable JSON (nested too deeply)") from None
    del text
    if not isinstance(data, list):
        raise IngestError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    yield from _records_from_objects(path, source, enumerate(data, start=1))


def _read_jsonl(path: Path, source: FileSource) -> Iterator[RawRecord]:
    def objects() -> Iterator[tuple[int, Any]]:
        for number, line in enumerate(text_lines(path, source, newline="\n"), start=1):
            line = line.removesuffix("\n")
            if not line.strip():
                continue
            try:
                yield number, json.loads(line, object_pairs_hook=_json_object)
            except json.JSONDecodeError as exc:
                yield number, _BadJson(str(exc), line)
            except RecursionError:
                yield number, _BadJson("nested too deeply", line)

    yield from _records_from_objects(path, source, objects())


@dataclass
class _BadJson:
    error: str
    line: str


def _keys(obj: dict) -> str:
    keys = list(obj)
    return repr(keys[:20])[:-1] + (", ...]" if len(keys) > 20 else "]")


def _records_from_objects(path: Path | str, source: FileSource | HubSource,
                          objects: Any) -> Iterator[RawRecord]:
    """Records of a sequence of objects. A key missing from one object is that row's reject
    (`missing_field`); a key that no object has is a file error, raised after the last row."""
    required = _required_columns(source)
    present: set[str] = set()
    first_keys: str | None = None
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
        if first_keys is None:
            first_keys = _keys(obj)
        missing = [c for c in required if c not in obj]
        present.update(c for c in required if c in obj)
        repeated = [c for c in required if c in getattr(obj, "repeated", ())]
        if missing:
            yield RawRecord(row=number, raw=preview(obj),
                            problem=("missing_field", missing[0],
                                     f"no key {missing[0]!r} in this object; keys are "
                                     f"{_keys(obj)}"))
        elif repeated:
            yield RawRecord(row=number, raw=preview(obj),
                            problem=("malformed_row", repeated[0],
                                     f"key {repeated[0]!r} appears more than once in this "
                                     "object"))
        else:
            yield RawRecord(row=number, values=obj, raw_from=obj, previewer=preview)
    if first_keys is None:
        raise IngestError(f"{path}: no rows")
    for column in required:
        if column not in present:
            raise IngestError(f"{path}: required column {column!r} not found in any row; "
                              f"the first row's keys are {first_keys}")


def _read_parquet(path: Path, source: FileSource) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_data_file(path)
    try:
        # With pre_buffer (the default) the Arrow memory held while iterating grows with the
        # file (pyarrow 26: +50 MB over 1.6 M short rows); without it, it stays flat.
        parquet = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"{path}: not a readable Parquet file ({exc})") from None
    columns = parquet.schema_arrow.names
    _require(path, columns, _required_columns(source))
    _no_repeated_columns(path, columns)
    number = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH):
        for values in batch.to_pylist():
            number += 1
            yield RawRecord(row=number, values=values, raw_from=values, previewer=preview)


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
    check_data_file(path)
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
    # A hub split has one schema: a column it lacks is missing from every row.
    _require(f"hub:{label}", list(dataset.column_names), _required_columns(source))
    yield from _records_from_objects(f"hub:{label}", source, enumerate(dataset, start=1))
