"""Build the `corpus` table (train and eval splits) and its rejects from a dataset spec.

Every input row ends in exactly one of the two tables. A row is rejected when
its bytes are not UTF-8 (`undecodable_bytes`), it has the wrong number of
fields (`malformed_row`) or is not valid JSON (`invalid_json`), a JSON object
lacks a mapped key (`missing_field`), a mapped value is an object or a list
(`not_a_scalar`) or longer than the source's `max_chars` (`too_long`), its text
is empty (`empty_text`), its label is missing (`missing_label`) or not one of
the dataset's labels (`unknown_label`), or it is a training row that repeats an
earlier one with the same normalised text and label (`duplicate_example`: its
`example_id` would not be unique).

The evaluation split is data the user trusts as given: it is never
deduplicated. A repeated evaluation row is kept (it is scored as often as it
appears, as in the source file) and counted (`duplicates_kept` of its source);
its copies share one `example_id`, so evaluation ids are not unique and nothing
downstream looks evaluation rows up by id. Only unreadable evaluation rows
(the reasons above) are rejected.

Labels follow one rule, `normalize.label_key`: numbers compare as numbers and
are named in canonical form (`1.0` -> `1`), other values are stripped text.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from distill_core.artifacts.schemas import CORPUS_SCHEMA, rejects_table
from distill_core.artifacts.store import file_sha256
from distill_core.errors import ConfigError, IngestError
from distill_core.ingest.normalize import (
    canonical_label_map,
    clean_text,
    example_id,
    label_key,
)
from distill_core.ingest.readers import (
    RawRecord,
    check_data_file,
    has_undecodable,
    read_file,
    read_hub,
    short_repr,
)
from distill_core.ingest.registry import get_dataset
from distill_core.ingest.sources import (
    DEFAULT_MAX_CHARS,
    DatasetSpec,
    FileSource,
    HubSource,
    SplitSource,
)

DATA_DIR_ENV = "TEXTDISTILL_DATA_DIR"
SPLITS = ("train", "eval")


@dataclass
class ResolvedSource:
    """The one source chosen for a split: a local file path, or a hub split."""

    split: str
    file: FileSource | None = None
    path: Path | None = None
    hub: HubSource | None = None

    @property
    def columns(self) -> FileSource | HubSource:
        return self.file if self.file is not None else self.hub  # type: ignore[return-value]

    @property
    def name(self) -> str:
        if self.path is not None:
            return str(self.path)
        hub = self.hub
        assert hub is not None
        return f"hub:{hub.path}" + (f"/{hub.name}" if hub.name else "") + f":{hub.split}"

    def identity(self) -> dict[str, Any]:
        """What the source is, for fingerprints: a file's sha256, or the hub coordinates."""
        if self.path is not None:
            check_data_file(self.path)
            try:
                return {"file": str(self.path), "sha256": file_sha256(self.path)}
            except OSError as exc:
                raise IngestError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        assert self.hub is not None
        return {"hub": self.hub.model_dump()}


@dataclass
class IngestResult:
    """The corpus, its rejects, the label names and per-source counts."""

    corpus: pa.Table
    rejects: pa.Table
    label_names: list[str]
    sources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_in(self) -> int:
        return sum(s["rows_read"] for s in self.sources)

    @property
    def eval_duplicates(self) -> int:
        """Evaluation rows kept although they repeat an earlier one (same text and label)."""
        return sum(s.get("duplicates_kept", 0) for s in self.sources if s["split"] == "eval")


def data_dir_from(value: str | None) -> Path | None:
    """The local data folder: the configured one, else $TEXTDISTILL_DATA_DIR, else None."""
    chosen = value or os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    folder = Path(chosen).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"data folder {folder} (from data_dir / {DATA_DIR_ENV}) does not exist")
    return folder.resolve()


def resolve_dataset(dataset: str | None, train: SplitSource | None = None,
                    eval: SplitSource | None = None,  # noqa: A002 - the split's name
                    label_names: list[str] | None = None) -> DatasetSpec:
    """A registered dataset with optional overrides, or a dataset made only of given sources."""
    if dataset is not None:
        spec = get_dataset(dataset).model_copy(deep=True)
        if train is not None:
            spec.train = train
        if eval is not None:
            spec.eval = eval
        if label_names is not None:
            spec.label_names = label_names
        return spec
    if train is None or eval is None:
        raise ConfigError("data: give a registered `dataset` name, or both `train` and `eval`")
    return DatasetSpec(train=train, eval=eval, label_names=label_names)


def choose_source(split: str, source: SplitSource, data_dir: Path | None) -> ResolvedSource:
    """Local file when a data folder is set (or no hub source exists), else the hub."""
    if source.file is not None and (data_dir is not None or source.hub is None):
        path = Path(source.file.path).expanduser()
        if not path.is_absolute():
            path = (data_dir or Path.cwd()) / path
        return ResolvedSource(split=split, file=source.file, path=path)
    if source.hub is not None:
        return ResolvedSource(split=split, hub=source.hub)
    raise ConfigError(f"data.{split}: no usable source")  # unreachable: SplitSource needs one


def resolve_sources(spec: DatasetSpec, data_dir: Path | None) -> list[ResolvedSource]:
    return [choose_source(name, getattr(spec, name), data_dir) for name in SPLITS]


def _natural_sort(names: set[str]) -> list[str]:
    try:
        return sorted(names, key=lambda n: float(n))
    except ValueError:
        return sorted(names)


def _records(source: ResolvedSource) -> Iterator[RawRecord]:
    if source.path is not None:
        assert source.file is not None
        return read_file(source.path, source.file)
    assert source.hub is not None
    return read_hub(source.hub)


class _SplitBuilder:
    """Turns one split's raw records into corpus rows and rejects."""

    def __init__(self, source: ResolvedSource, known_labels: list[str] | None,
                 max_chars: int) -> None:
        self.source = source
        self.columns = source.columns
        self.known_labels = set(known_labels) if known_labels is not None else None
        self.max_chars = max_chars
        label_map = self.columns.label_map
        try:
            if label_map is not None:
                self.label_map: dict[str, str] | None = canonical_label_map(label_map)
            elif known_labels is not None:
                # No map: the raw label is the name, so a given name matches by the label rule
                # (label_names ['1.0'] matches a label written 1) and is kept as written.
                self.label_map = canonical_label_map(
                    {n: n for n in known_labels if label_key(n) is not None}, "label_names")
            else:
                self.label_map = None
        except ValueError as exc:
            raise ConfigError(f"{source.name}: {exc}") from None
        self.rows: list[dict[str, Any]] = []
        self.rejects: list[dict[str, Any]] = []
        self.first_row_of_id: dict[str, int] = {}
        self.rows_read = 0
        # The evaluation split keeps its repeated rows, counted here.
        self.keep_duplicates = source.split == "eval"
        self.duplicates_kept = 0

    def _reject(self, record: RawRecord, reason: str, column: str | None, detail: str,
                identifier: str | None = None) -> None:
        self.rejects.append({
            "example_id": identifier, "split": self.source.split, "source": self.source.name,
            "source_row": record.row, "field": column, "reason": reason, "detail": detail,
            "raw": record.raw,
        })

    def _text(self, values: dict[str, Any], record: RawRecord, column: str) -> str | None:
        value = values[column]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            self._reject(record, "empty_text", column, "no value")
            return None
        text = clean_text(str(value))
        if not text:
            self._reject(record, "empty_text", column, "empty after stripping whitespace")
            return None
        return text

    def _scalars(self, record: RawRecord) -> dict[str, Any] | None:
        """The mapped fields' values, or None after rejecting the row: an object or a list
        (`not_a_scalar`), a value over `max_chars` (`too_long`, checked before any copy of
        it is made) or bytes that are not UTF-8 (`undecodable_bytes`)."""
        cols = self.columns
        values: dict[str, Any] = {}
        for column in (cols.text, cols.text_pair, cols.label):
            if column is None:
                continue
            value = record.values.get(column)
            if isinstance(value, bytes | bytearray):  # a Parquet binary column
                value = bytes(value).decode("utf-8", "surrogateescape")
            if isinstance(value, dict | list | tuple | set):
                kind = "an object" if isinstance(value, dict) else "a list"
                self._reject(record, "not_a_scalar", column,
                             f"{kind} where a single text or label value is expected")
                return None
            if isinstance(value, str) and len(value) > self.max_chars:
                self._reject(record, "too_long", column,
                             f"{len(value):,} characters, more than max_chars "
                             f"({self.max_chars:,})")
                return None
            if has_undecodable(value):
                self._reject(record, "undecodable_bytes", column,
                             "bytes that are not UTF-8 (set `encoding:` on the source if the "
                             "file is in another encoding)")
                return None
            values[column] = value
        return values

    def add(self, record: RawRecord) -> None:
        self.rows_read += 1
        if record.problem is not None:
            reason, column, detail = record.problem
            self._reject(record, reason, column, detail)
            return
        cols = self.columns
        values = self._scalars(record)
        if values is None:
            return
        text = self._text(values, record, cols.text)
        if text is None:
            return
        pair = None
        if cols.text_pair is not None:
            pair = self._text(values, record, cols.text_pair)
            if pair is None:
                return
        key = label_key(values[cols.label])
        if key is None:
            self._reject(record, "missing_label", cols.label, "no label value")
            return
        if cols.label_map is not None:
            assert self.label_map is not None
            if key not in self.label_map:
                self._reject(record, "unknown_label", cols.label,
                             f"label {short_repr(key)} not in label_map {sorted(cols.label_map)}")
                return
            label = self.label_map[key]
        else:
            label = self.label_map.get(key, key) if self.label_map is not None else key
        if self.known_labels is not None and label not in self.known_labels:
            self._reject(record, "unknown_label", cols.label,
                         f"label {short_repr(label)} not among {sorted(self.known_labels)}")
            return
        identifier = example_id(text, label, pair)
        if identifier in self.first_row_of_id:
            if not self.keep_duplicates:
                self._reject(record, "duplicate_example", cols.text,
                             "same normalised text and label as row "
                             f"{self.first_row_of_id[identifier]}",
                             identifier)
                return
            self.duplicates_kept += 1
        self.first_row_of_id.setdefault(identifier, record.row)
        self.rows.append({
            "example_id": identifier, "split": self.source.split, "text": text,
            "text_pair": pair, "label": label, "source": self.source.name,
            "source_row": record.row,
        })


def max_chars_of(source: ResolvedSource, default: int | None) -> int:
    """The text length limit for `source`: its own `max_chars`, else `default`, else
    DEFAULT_MAX_CHARS."""
    if source.file is not None and source.file.max_chars is not None:
        return source.file.max_chars
    return default if default is not None else DEFAULT_MAX_CHARS


def ingest_dataset(spec: DatasetSpec, data_dir: Path | None,
                   max_chars: int | None = None) -> IngestResult:
    """Read the train and eval splits of `spec` into one corpus table and one rejects table.

    `max_chars` is the text length limit for sources that set none (None: DEFAULT_MAX_CHARS);
    longer values are rejected as `too_long`.
    """
    if max_chars is not None and max_chars < 1:
        raise ConfigError(f"max_chars must be 1 or more, got {max_chars}")
    sources = resolve_sources(spec, data_dir)
    label_names = list(spec.label_names) if spec.label_names is not None else None
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    source_stats: list[dict[str, Any]] = []
    for source in sources:
        builder = _SplitBuilder(source, label_names, max_chars_of(source, max_chars))
        for record in _records(source):
            builder.add(record)
        if source.split == "train":
            if not builder.rows:
                raise IngestError(f"{source.name}: no usable training rows "
                                  f"({len(builder.rejects)} rejected)")
            seen = {r["label"] for r in builder.rows}
            if len(seen) < 2:
                raise IngestError(f"{source.name}: every usable training row has the label "
                                  f"{next(iter(seen))!r}; distillation needs two classes or more")
            if label_names is None:
                label_names = _natural_sort(seen)
        rows.extend(builder.rows)
        rejects.extend(builder.rejects)
        source_stats.append({
            "split": source.split, "source": source.name, "rows_read": builder.rows_read,
            "rows_out": len(builder.rows), "rows_rejected": len(builder.rejects),
            "duplicates_kept": builder.duplicates_kept,
            "rejects_by_reason": dict(Counter(r["reason"] for r in builder.rejects)),
            **source.identity(),
        })
    assert label_names is not None
    index = {name: i for i, name in enumerate(label_names)}
    for row in rows:
        row["label_id"] = index[row["label"]]
    corpus = pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA)
    return IngestResult(corpus=corpus, rejects=rejects_table(rejects), label_names=label_names,
                        sources=source_stats)
