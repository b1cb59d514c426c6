"""Declarative description of where a split's rows come from and how to map its columns.

A source is a local file (CSV, TSV, JSON, JSONL, Parquet, or `label_text` lines
such as `1 a fine film`) or a Hugging Face hub dataset split. Each source
carries its own column mapping and label map, because the same dataset is laid
out differently on the hub and in local mirrors (AG News: labels 0-3 on the
hub, 1-4 in the CSV release).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
        "are rejected as unknown_label. Without a map, the raw value is the label name.",
    )


class FileSource(ColumnMap):
    """One local file holding one split."""

    path: str = Field(description="File path; relative paths resolve against the data folder.")
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

    @model_validator(mode="after")
    def _check_layout(self) -> FileSource:
        if self.format is None:
            self.format = _SUFFIX_FORMATS.get(Path(self.path).suffix.lower())
        if self.format in ("csv", "tsv") and not self.header and not self.columns:
            raise ValueError(f"{self.path}: a {self.format} file without header needs `columns`")
        return self


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
