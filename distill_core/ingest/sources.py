"""Declarative description of where a split's rows come from and how to map its columns.

A source is a local file (CSV, TSV, JSON, JSONL, Parquet, or `label_text` lines
such as `1 a fine film`) or a Hugging Face hub dataset split. Each source
carries its own column mapping and label map, because the same dataset is laid
out differently on the hub and in local mirrors (AG News: labels 0-3 on the
hub, 1-4 in the CSV release).
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from distill_core.ingest.normalize import canonical_label_map

FileFormat = Literal["csv", "tsv", "json", "jsonl", "parquet", "label_text"]

_SUFFIX_FORMATS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

# Compression is chosen by the last suffix; the suffix before it names the format.
COMPRESSION_SUFFIXES: dict[str, str] = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}

# Texts longer than this (in characters) are rejected as `too_long` unless a source or the
# caller of `ingest_dataset` sets another limit. Encoders read a few hundred tokens.
DEFAULT_MAX_CHARS = 100_000


def compression_of(path: str | Path) -> str | None:
    """The compression a file name announces (`train.jsonl.gz` -> 'gzip'), or None."""
    return COMPRESSION_SUFFIXES.get(Path(path).suffix.lower())


def format_of(path: str | Path) -> FileFormat | None:
    """The format a file name announces, looking past a compression suffix."""
    name = Path(path)
    if compression_of(name) is not None:
        name = name.with_suffix("")
    return _SUFFIX_FORMATS.get(name.suffix.lower())


class ColumnMap(BaseModel):
    """Which columns hold the text (or text pair) and the label."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="Column holding the text (the first text of a pair).")
    text_pair: str | None = Field(
        default=None, description="Column holding the second text of a pair task, if any."
    )
    label: str = Field(description="Column holding the label (string or integer).")
    label_map: dict[str, str] | None = Field(
        default=None,
        description="Raw label value (as written, e.g. '1') -> label name. Values not in the map "
        "are rejected as unknown_label. Without a map, the raw value is the label name. Keys "
        "follow the label rule: '1' also matches a label written 1.0.",
    )

    @field_validator("label_map")
    @classmethod
    def _one_name_per_label(cls, label_map: dict[str, str] | None) -> dict[str, str] | None:
        if label_map is not None:
            canonical_label_map(label_map)  # raises when two keys are one label
        return label_map


class FileSource(ColumnMap):
    """One local file holding one split, or a folder or glob of such files (see `paths`)."""

    path: str = Field(description="File path, or a folder or a glob (`daily/*.csv`) whose files "
                      "are read in name order as one source; relative paths resolve against "
                      "the data folder.")
    format: FileFormat | None = Field(
        default=None, description="File format; inferred from the suffix when omitted."
    )
    header: bool = Field(default=True, description="CSV/TSV: the first line names the columns.")
    columns: list[str] | None = Field(
        default=None, description="CSV/TSV without header: the column names, in order."
    )
    quoting: bool = Field(
        default=True,
        description="CSV/TSV: honour double quotes. Turn off for files (GLUE TSVs) whose text "
        "contains bare quote characters.",
    )
    delimiter: str | None = Field(
        default=None, description="CSV/TSV delimiter; ',' for csv and a tab for tsv by default."
    )
    encoding: str | None = Field(
        default=None,
        description="Text encoding of the file, e.g. 'latin-1' or 'utf-16-le'. Unset: UTF-8 "
        "(with or without BOM), or UTF-16/UTF-32 when the file starts with their BOM.",
    )
    max_chars: int | None = Field(
        default=None, ge=1,
        description=f"Texts longer than this many characters are rejected as too_long. Unset: "
        f"the ingest default ({DEFAULT_MAX_CHARS:,}).",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str | None) -> str | None:
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise ValueError(f"unknown encoding {encoding!r}") from None
        return encoding

    @model_validator(mode="after")
    def _check_layout(self) -> FileSource:
        if self.format is None:
            self.format = format_of(self.path)
        if self.format in ("csv", "tsv") and not self.header and not self.columns:
            raise ValueError(f"{self.path}: a {self.format} file without header needs `columns`")
        if self.format == "parquet" and compression_of(self.path) is not None:
            raise ValueError(f"{self.path}: Parquet compresses inside the file; give the plain "
                             ".parquet file")
        if self.format == "parquet" and self.encoding is not None:
            raise ValueError(f"{self.path}: `encoding` applies to text files, not Parquet")
        if self.columns is not None and len(set(self.columns)) != len(self.columns):
            repeated = sorted({c for c in self.columns if self.columns.count(c) > 1})
            raise ValueError(f"{self.path}: `columns` names {repeated} more than once")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Options added later are dumped only when set, so the config hash and the ingest
        # fingerprint of a source that does not use them stay what they were.
        data = handler(self)
        for name in ("encoding", "max_chars"):
            if data.get(name, 0) is None:
                del data[name]
        return data


class HubSource(ColumnMap):
    """One split of a Hugging Face hub dataset."""

    path: str = Field(description="Hub dataset id, e.g. 'nyu-mll/glue'.")
    name: str | None = Field(default=None, description="Dataset configuration, e.g. 'sst2'.")
    split: str = Field(description="Split name on the hub, e.g. 'validation'.")
    revision: str | None = Field(default=None, description="Git revision to pin.")


class SplitSource(BaseModel):
    """Where one split comes from: a local file, the hub, or both (local wins offline)."""

    model_config = ConfigDict(extra="forbid")

    file: FileSource | None = Field(default=None, description="Local file for this split.")
    hub: HubSource | None = Field(default=None, description="Hub split for this split.")

    @model_validator(mode="after")
    def _need_one(self) -> SplitSource:
        if self.file is None and self.hub is None:
            raise ValueError("a split needs a `file` or a `hub` source")
        return self


class DatasetSpec(BaseModel):
    """A labelled dataset: its train and evaluation splits and its label names."""

    model_config = ConfigDict(extra="forbid")

    train: SplitSource
    eval: SplitSource
    label_names: list[str] | None = Field(
        default=None,
        description="Label names in class-index order. Inferred from the train split when omitted.",
    )
    description: str = ""
