"""Read instruction files (Alpaca JSON, GSM8K JSONL, any mapped CSV/TSV/JSONL/Parquet) into rows.

Every input row ends in exactly one of two tables: the rows (`INSTRUCTION_SCHEMA`)
or the rejects (the project's `REJECTS_SCHEMA`: file, row, field, reason,
detail). Parsing is the classification ingest's own (`ingest.readers`): a line
that is not JSON is `invalid_json`, an object without the response or
instruction key `missing_field`, a wrong field count `malformed_row`. Then,
per row: an object or list where a text is expected is `not_a_scalar`, bytes
that are not UTF-8 `undecodable_bytes`, a value over `max_chars` `too_long`, an
empty instruction `empty_prompt`, an empty response `empty_response`, and a
training row with the same normalised prompt and response as an earlier one
`duplicate_example`. The input column is optional: absent or empty means no
input.

The evaluation split comes from its own file (GSM8K `test.jsonl`; kept as given,
repeats included, as the classification ingest does) or is held out of the
training file (Alpaca): after reading and deduplicating, a seeded permutation
picks `round(fraction * rows)` rows for `eval`. The seed, the fraction, the row
count and the sha256 of the sorted held-out ids are returned (`holdout`) for the
manifest; deduplicating first means no copy of a held-out row stays in the pool.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distill_core.artifacts.schemas import rejects_table
from distill_core.artifacts.store import file_sha256
from distill_core.errors import ConfigError, IngestError
from distill_core.hashing import stable_hash
from distill_core.ingest.normalize import clean_text
from distill_core.ingest.readers import RawRecord, has_undecodable, read_file
from distill_core.ingest.sources import DEFAULT_MAX_CHARS, FileFormat, FileSource
from distill_core.instruct.rows import INSTRUCTION_SCHEMA, compose_prompt, instruction_id


class InstructionSource(BaseModel):
    """One local file of prompt/response rows and which columns hold what."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="File path; relative paths resolve against the data folder.")
    format: FileFormat | None = Field(default=None, description="Inferred from the suffix.")
    instruction: str = Field(default="instruction", description="Column of the instruction.")
    input: str | None = Field(default=None, description="Optional column appended to the "
                              "instruction after a blank line (Alpaca's `input`).")
    response: str = Field(default="output", description="Column of the reference response.")
    header: bool = Field(default=True, description="CSV/TSV: the first line names the columns.")
    columns: list[str] | None = Field(
        default=None, description="CSV/TSV without header: the column names, in order.")
    delimiter: str | None = Field(default=None, description="CSV/TSV delimiter.")
    encoding: str | None = Field(default=None, description="Text encoding; unset: UTF-8.")
    max_chars: int | None = Field(default=None, ge=1, description="Longer values are rejected "
                                  f"as too_long; unset: {DEFAULT_MAX_CHARS:,}.")

    @model_validator(mode="after")
    def _distinct_columns(self) -> InstructionSource:
        named = [c for c in (self.instruction, self.input, self.response) if c is not None]
        if len(set(named)) != len(named):
            raise ValueError(f"{self.path}: instruction, input and response must be different "
                             f"columns, got {named}")
        try:  # the file layout (header, columns, format) is checked when the config loads
            self.file_source(Path(self.path))
        except ValidationError as error:
            raise ValueError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return self

    def file_source(self, path: Path) -> FileSource:
        """The classification reader's view: instruction as `text`, response as `label`
        (both required keys), the input read from the record's values when present."""
        return FileSource(path=str(path), format=self.format, text=self.instruction,
                          label=self.response, header=self.header, columns=self.columns,
                          delimiter=self.delimiter,
                          encoding=self.encoding, max_chars=self.max_chars)


ALPACA_COLUMNS: dict[str, Any] = {"instruction": "instruction", "input": "input",
                                  "response": "output"}
GSM8K_COLUMNS: dict[str, Any] = {"instruction": "question", "response": "answer"}


class Holdout(BaseModel):
    """A seeded fraction of the training file kept out of the pool as the evaluation split."""

    model_config = ConfigDict(extra="forbid")

    fraction: float = Field(default=0.1, gt=0.0, lt=1.0, description="Share of the usable rows.")
    seed: int = Field(default=0, description="Seed of the permutation that picks them.")


@dataclass
class InstructionIngest:
    """The rows (train and eval splits), the rejects, per-source counts and the holdout record."""

    corpus: pa.Table
    rejects: pa.Table
    sources: list[dict[str, Any]] = field(default_factory=list)
    holdout: dict[str, Any] | None = None

    @property
    def rows_in(self) -> int:
        return sum(s["rows_read"] for s in self.sources)


def _resolve(path: str, data_dir: Path | None) -> Path:
    resolved = Path(path).expanduser()
    if not resolved.is_absolute():
        resolved = (data_dir or Path.cwd()) / resolved
    return resolved


class _Builder:
    """Turns one file's raw records into instruction rows and rejects."""

    def __init__(self, source: InstructionSource, path: Path, split: str) -> None:
        self.source, self.path, self.split = source, path, split
        self.max_chars = source.max_chars or DEFAULT_MAX_CHARS
        self.rows: list[dict[str, Any]] = []
        self.rejects: list[dict[str, Any]] = []
        self.first_row_of_id: dict[str, int] = {}
        self.rows_read = 0
        self.duplicates_kept = 0
        self.keep_duplicates = split == "eval"

    def _reject(self, record: RawRecord, reason: str, column: str | None, detail: str,
                identifier: str | None = None) -> None:
        self.rejects.append({
            "example_id": identifier, "split": self.split, "source": str(self.path),
            "source_row": record.row, "field": column, "reason": reason, "detail": detail,
            "raw": record.raw,
        })

    def _value(self, record: RawRecord, column: str) -> tuple[bool, str]:
        """(ok, cleaned text) of one column; rejects the row and returns ok=False when the
        value is not a usable scalar. A missing or null value is the empty string."""
        value = record.values.get(column)
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("utf-8", "surrogateescape")
        if isinstance(value, dict | list | tuple | set):
            kind = "an object" if isinstance(value, dict) else "a list"
            self._reject(record, "not_a_scalar", column, f"{kind} where a text is expected")
            return False, ""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return True, ""
        if isinstance(value, str) and len(value) > self.max_chars:
            self._reject(record, "too_long", column, f"{len(value):,} characters, more than "
                         f"max_chars ({self.max_chars:,})")
            return False, ""
        if has_undecodable(value):
            self._reject(record, "undecodable_bytes", column, "bytes that are not UTF-8 (set "
                         "`encoding:` on the source if the file is in another encoding)")
            return False, ""
        return True, clean_text(str(value))

    def add(self, record: RawRecord) -> None:
        self.rows_read += 1
        if record.problem is not None:
            reason, column, detail = record.problem
            self._reject(record, reason, column, detail)
            return
        src = self.source
        texts: dict[str, str] = {}
        for role, column in (("instruction", src.instruction), ("input", src.input),
                             ("response", src.response)):
            if column is None:
                texts[role] = ""
                continue
            ok, texts[role] = self._value(record, column)
            if not ok:
                return
        if not texts["instruction"]:
            self._reject(record, "empty_prompt", src.instruction, "no instruction text")
            return
        if not texts["response"]:
            self._reject(record, "empty_response", src.response, "no response text")
            return
        prompt = compose_prompt(texts["instruction"], texts["input"] or None)
        identifier = instruction_id(prompt, texts["response"])
        if identifier in self.first_row_of_id:
            if not self.keep_duplicates:
                self._reject(record, "duplicate_example", src.instruction,
                             "same normalised prompt and response as row "
                             f"{self.first_row_of_id[identifier]}", identifier)
                return
            self.duplicates_kept += 1
        self.first_row_of_id.setdefault(identifier, record.row)
        self.rows.append({
            "example_id": identifier, "split": self.split, "prompt": prompt,
            "instruction": texts["instruction"], "input": texts["input"] or None,
            "response": texts["response"], "source": str(self.path), "source_row": record.row,
        })

    def stats(self) -> dict[str, Any]:
        return {
            "split": self.split, "source": str(self.path), "rows_read": self.rows_read,
            "rows_out": len(self.rows), "rows_rejected": len(self.rejects),
            "duplicates_kept": self.duplicates_kept,
            "rejects_by_reason": dict(Counter(r["reason"] for r in self.rejects)),
            "file": str(self.path), "sha256": file_sha256(self.path),
        }


def _read(source: InstructionSource, data_dir: Path | None, split: str) -> _Builder:
    path = _resolve(source.path, data_dir)
    if data_dir is None and not Path(source.path).expanduser().is_absolute() \
            and not path.exists():
        raise IngestError(f"{path}: file not found (a relative path resolves against the "
                          "data folder, and none is set: pass --data-dir or set "
                          "TEXTDISTILL_DATA_DIR)")
    builder = _Builder(source, path, split)
    for record in read_file(path, source.file_source(path)):
        builder.add(record)
    return builder


def hold_out(rows: list[dict[str, Any]], holdout: Holdout) -> dict[str, Any]:
    """Mark a seeded `fraction` of `rows` (at least one, never all) as `eval`, in place, and
    return the record that reproduces the choice."""
    if len(rows) < 2:
        raise IngestError(f"{len(rows)} usable row(s): too few to hold out an evaluation split")
    count = min(len(rows) - 1, max(1, round(holdout.fraction * len(rows))))
    chosen = np.random.default_rng(holdout.seed).permutation(len(rows))[:count]
    for index in chosen:
        rows[int(index)]["split"] = "eval"
    ids = sorted(rows[int(i)]["example_id"] for i in chosen)
    return {"seed": holdout.seed, "fraction": holdout.fraction, "rows": count,
            "pool_rows": len(rows) - count, "ids_sha256": stable_hash(ids)}


def ingest_instructions(train: InstructionSource, eval: InstructionSource | None = None,  # noqa: A002
                        holdout: Holdout | None = None,
                        data_dir: Path | None = None,
                        unusable: list[str] | None = None) -> InstructionIngest:
    """Rows of the training file (and of an evaluation file, or a held-out part of the
    training file), with every unusable row in the rejects table. With `unusable` (a list),
    a training file with no usable row is noted there instead of raising, and the rest is
    still read (`textdistill validate` lists every reject)."""
    if (eval is None) == (holdout is None):
        raise ConfigError("instruction data: give either an evaluation file or a holdout, "
                          "not both and not neither")
    train_part = _read(train, data_dir, "train")
    if not train_part.rows:
        reasons = Counter(reject["reason"] for reject in train_part.rejects)
        problem = (f"{train_part.path}: no usable training rows ({len(train_part.rejects)} "
                   f"rejected: {', '.join(f'{r} {n}' for r, n in reasons.most_common())})")
        if unusable is None:
            raise IngestError(problem)
        unusable.append(problem)
    parts = [train_part]
    record = None
    if holdout is not None and train_part.rows:
        record = hold_out(train_part.rows, holdout)
    elif eval is not None:
        parts.append(_read(eval, data_dir, "eval"))
    rows = [row for part in parts for row in part.rows]
    rejects = [reject for part in parts for reject in part.rejects]
    stats = [part.stats() for part in parts]
    if record is not None:
        stats[0]["rows_held_out"] = record["rows"]
    return InstructionIngest(corpus=pa.Table.from_pylist(rows, schema=INSTRUCTION_SCHEMA),
                             rejects=rejects_table(rejects), sources=stats, holdout=record)


def ingest_alpaca(data_dir: Path, fraction: float = 0.1, seed: int = 0,
                  path: str = "alpaca_subset/alpaca_5000.json") -> InstructionIngest:
    """The Alpaca subset with a seeded held-out evaluation split."""
    return ingest_instructions(InstructionSource(path=path, **ALPACA_COLUMNS),
                               holdout=Holdout(fraction=fraction, seed=seed), data_dir=data_dir)


def ingest_gsm8k(data_dir: Path, train: str = "gsm8k/train.jsonl",
                 test: str = "gsm8k/test.jsonl") -> InstructionIngest:
    """GSM8K train as the pool, its test file as the evaluation split."""
    return ingest_instructions(InstructionSource(path=train, **GSM8K_COLUMNS),
                               eval=InstructionSource(path=test, **GSM8K_COLUMNS),
                               data_dir=data_dir)
