"""Build the `corpus` table (train and eval splits) and its rejects from a dataset spec.

Every input row ends in exactly one of the two tables. A row is rejected when
its bytes are not UTF-8 (`undecodable_bytes`), it has the wrong number of
fields (`malformed_row`) or is not valid JSON (`invalid_json`), its text is
empty (`empty_text`), its label is missing (`missing_label`) or not one of the
dataset's labels (`unknown_label`), or it repeats an earlier row of the same
split with the same normalised text and label (`duplicate_example`: its
`example_id` would not be unique).
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
from distill_core.artifacts.store import sha256_files
from distill_core.errors import ConfigError, IngestError
from distill_core.ingest.normalize import clean_text, example_id
from distill_core.ingest.readers import RawRecord, has_undecodable, read_file, read_hub
from distill_core.ingest.registry import get_dataset
from distill_core.ingest.sources import DatasetSpec, FileSource, HubSource, SplitSource

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
            if not self.path.is_file():
                raise IngestError(f"{self.path}: file not found")
            return {"file": str(self.path), "sha256": sha256_files([self.path])}
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


def label_key(value: Any) -> str | None:
    """A raw label as a string key: 1, 1.0 and '1' are the same label; None/NaN/'' are missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    text = str(value).strip()
    if text.lower() in ("", "nan", "none", "null"):
        return None
    return text


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

    def __init__(self, source: ResolvedSource, known_labels: list[str] | None) -> None:
        self.source = source
        self.columns = source.columns
        self.known_labels = set(known_labels) if known_labels is not None else None
        self.rows: list[dict[str, Any]] = []
        self.rejects: list[dict[str, Any]] = []
        self.first_row_of_id: dict[str, int] = {}
        self.rows_read = 0

    def _reject(self, record: RawRecord, reason: str, column: str | None, detail: str,
                identifier: str | None = None) -> None:
        self.rejects.append({
            "example_id": identifier, "split": self.source.split, "source": self.source.name,
            "source_row": record.row, "field": column, "reason": reason, "detail": detail,
            "raw": record.raw,
        })

    def _text(self, record: RawRecord, column: str) -> str | None:
        value = record.values.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            self._reject(record, "empty_text", column, "no value")
            return None
        text = clean_text(str(value))
        if not text:
            self._reject(record, "empty_text", column, "empty after stripping whitespace")
            return None
        return text

    def add(self, record: RawRecord) -> None:
        self.rows_read += 1
        if record.problem is not None:
            reason, column, detail = record.problem
            self._reject(record, reason, column, detail)
            return
        cols = self.columns
        used = [c for c in (cols.text, cols.text_pair, cols.label) if c is not None]
        for column in used:
            if has_undecodable(record.values.get(column)):
                self._reject(record, "undecodable_bytes", column, "bytes that are not UTF-8")
                return
        text = self._text(record, cols.text)
        if text is None:
            return
        pair = None
        if cols.text_pair is not None:
            pair = self._text(record, cols.text_pair)
            if pair is None:
                return
        key = label_key(record.values.get(cols.label))
        if key is None:
            self._reject(record, "missing_label", cols.label, "no label value")
            return
        if cols.label_map is not None:
            if key not in cols.label_map:
                self._reject(record, "unknown_label", cols.label,
                             f"label {key!r} not in label_map {sorted(cols.label_map)}")
                return
            label = cols.label_map[key]
        else:
            label = key
        if self.known_labels is not None and label not in self.known_labels:
            self._reject(record, "unknown_label", cols.label,
                         f"label {label!r} not among {sorted(self.known_labels)}")
            return
        identifier = example_id(text, label, pair)
        if identifier in self.first_row_of_id:
            self._reject(record, "duplicate_example", cols.text,
                         "same normalised text and label as row "
                         f"{self.first_row_of_id[identifier]}",
                         identifier)
            return
        self.first_row_of_id[identifier] = record.row
        self.rows.append({
            "example_id": identifier, "split": self.source.split, "text": text,
            "text_pair": pair, "label": label, "source": self.source.name,
            "source_row": record.row,
        })


def ingest_dataset(spec: DatasetSpec, data_dir: Path | None) -> IngestResult:
    """Read the train and eval splits of `spec` into one corpus table and one rejects table."""
    sources = resolve_sources(spec, data_dir)
    label_names = list(spec.label_names) if spec.label_names is not None else None
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    source_stats: list[dict[str, Any]] = []
    for source in sources:
        builder = _SplitBuilder(source, label_names)
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
