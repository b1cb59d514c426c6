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

Ingest streams: each file is read in batches of `BATCH_ROWS` records, and each
batch's corpus rows and rejects go to a sink (`StageWriter` in a run, a table
collector in `ingest_dataset`) as soon as they are made, so memory stays flat as
the corpus grows; deduplication keeps 16 bytes per training id. When the label
names are not given they are those of the usable training rows, known only after
the training split is read: its rows are then spilled to a temporary Arrow
stream and given their label ids on the way to the sink. A source's path may
be a folder or a glob of files (`paths`), read in name order.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distill_core.artifacts.schemas import CORPUS_SCHEMA, rejects_table
from distill_core.artifacts.store import file_sha256
from distill_core.errors import ConfigError, IngestError
from distill_core.ingest.file_cache import Entry, EntryWriter, FileCache
from distill_core.ingest.paths import expand, file_source_for, is_many
from distill_core.ingest.readers import RawRecord, check_data_file, read_file, read_hub
from distill_core.ingest.registry import get_dataset
from distill_core.ingest.sources import (
    DEFAULT_MAX_CHARS,
    DatasetSpec,
    FileSource,
    HubSource,
    SplitSource,
)
from distill_core.ingest.split import BatchOut, SplitBuilder

DATA_DIR_ENV = "TEXTDISTILL_DATA_DIR"
SPLITS = ("train", "eval")
BATCH_ROWS = 32_768  # records per batch: bounds what one batch holds in memory
REJECTS_SCHEMA = rejects_table([]).schema


@dataclass
class ResolvedSource:
    """The one source chosen for a split: a local path (a file, a folder of files or a glob),
    or a hub split."""

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

    @property
    def many(self) -> bool:
        """The path names several files (a folder or a glob; see `paths`)."""
        return self.path is not None and is_many(self.path)

    def files(self) -> list[Path]:
        """The local files this source reads, in order (empty for a hub split)."""
        return [] if self.path is None else expand(self.path)

    def identity(self) -> dict[str, Any]:
        """What the source is, for fingerprints: a file's sha256 (each file's, for a folder
        or a glob), or the hub coordinates."""
        if self.path is not None:
            if not self.many:
                return {"file": str(self.path), "sha256": _sha256(self.path)}
            return {"file": str(self.path),
                    "files": [{"file": str(f), "sha256": _sha256(f)} for f in self.files()]}
        assert self.hub is not None
        from distill_core.hub import hub_commit

        identity: dict[str, Any] = {"hub": self.hub.model_dump()}
        if (commit := hub_commit(self.hub.path, "dataset", self.hub.revision)) is not None:
            identity["commit"] = commit  # the dataset's files, not only its name
        return identity


def _sha256(path: Path) -> str:
    check_data_file(path)
    try:
        return file_sha256(path)
    except OSError as exc:
        raise IngestError(f"{path}: cannot read ({exc.strerror or exc})") from None


class Sink(Protocol):
    """Where ingest puts its rows batch by batch (`StageWriter` has this shape)."""

    def write(self, table: pa.Table, rejects: bool = False) -> None: ...


@dataclass
class IngestSummary:
    """What a streamed ingest wrote: label names, per-source stats, counts in stream order."""

    label_names: list[str]
    sources: list[dict[str, Any]] = field(default_factory=list)
    rows_by_split: dict[str, int] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def rows_in(self) -> int:
        return sum(s["rows_read"] for s in self.sources)

    @property
    def rows_out(self) -> int:
        return sum(self.rows_by_split.values())

    @property
    def eval_duplicates(self) -> int:
        """Evaluation rows kept although they repeat an earlier one (same text and label)."""
        return sum(s.get("duplicates_kept", 0) for s in self.sources if s["split"] == "eval")


@dataclass
class IngestResult:
    """The corpus, its rejects, the label names and per-source counts."""

    corpus: pa.Table
    rejects: pa.Table
    label_names: list[str]
    sources: list[dict[str, Any]] = field(default_factory=list)
    # Why a run would stop at ingest although every file was read (no usable training row,
    # one class only): filled instead of raised when the caller asks (`validate`).
    unusable: list[str] = field(default_factory=list)

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


HEADER_FORMATS = ("csv", "tsv", "parquet")  # a header names the columns: cheap to check


def check_headers(spec: DatasetSpec, data_dir: Path | None) -> None:
    """Open every local file of the dataset and read its first record, so that what fails
    a whole file (missing, unreadable, no such column in the header, repeated columns)
    raises its `IngestError` now, before any stage runs (`textdistill plan`). Rows are not
    checked: a bad row is that row's reject, as in a run. Files without a header (JSON, JSON
    lines, label-text) are only checked to exist: their columns are known per row, and a
    JSON array is only readable whole."""
    for source in resolve_sources(spec, data_dir):
        if source.file is None:
            continue
        many = source.many
        for path in source.files():
            options = file_source_for(source.file, path, many)
            if options.format in HEADER_FORMATS:
                next(iter(read_file(path, options)), None)
            else:
                check_data_file(path)


def max_chars_of(source: ResolvedSource, default: int | None) -> int:
    """The text length limit for `source`: its own `max_chars`, else `default`, else
    DEFAULT_MAX_CHARS."""
    if source.file is not None and source.file.max_chars is not None:
        return source.file.max_chars
    return default if default is not None else DEFAULT_MAX_CHARS


def _chunks(records: Iterator[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def record_batches(source: ResolvedSource, batch_rows: int
                   ) -> Iterator[tuple[str, int, list[RawRecord]]]:
    """Batches of consecutive records, none spanning two files: (file or hub name, the
    file's index in the source, records)."""
    if source.path is None:
        assert source.hub is not None
        for chunk in _chunks(read_hub(source.hub), batch_rows):
            yield source.name, 0, chunk
        return
    assert source.file is not None
    many = source.many
    for index, path in enumerate(source.files()):
        records = read_file(path, file_source_for(source.file, path, many))
        for chunk in _chunks(records, batch_rows):
            yield str(path), index, chunk


def _corpus_table(split: str, source: str, out: BatchOut,
                  label_ids: list[int] | None) -> pa.Table:
    size = len(out.ids)
    return pa.table({
        "example_id": out.ids, "split": [split] * size, "text": out.texts,
        "text_pair": out.pairs, "label": out.labels,
        "label_id": label_ids if label_ids is not None else [None] * size,
        "source": [source] * size, "source_row": out.rows}, schema=CORPUS_SCHEMA)


class _Spill:
    """Training rows written before their label ids are known (label names inferred from
    the training split), replayed with their ids once the split is read. An uncompressed
    Arrow IPC stream: writing and reading it costs little next to making the rows, and it
    is read batch by batch with plain reads (a memory map would count in the RSS)."""

    def __init__(self, folder: Path | None) -> None:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        self._dir = tempfile.TemporaryDirectory(prefix=".ingest-spill-", dir=folder)
        self.path = Path(self._dir.name) / "train.arrows"
        self._file: pa.NativeFile | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._file = pa.OSFile(str(self.path), "wb")
            self._writer = pa.ipc.new_stream(self._file, CORPUS_SCHEMA)
        self._writer.write_table(table)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def replay(self, sink: Sink, label_names: list[str]) -> None:
        """Write the spilled rows to `sink` with their label ids, one batch at a time."""
        if self._writer is None:
            return
        self._close_writer()
        names = pa.array(label_names, pa.string())
        where = CORPUS_SCHEMA.get_field_index("label_id")
        with pa.OSFile(str(self.path), "rb") as handle:
            for batch in pa.ipc.open_stream(handle):
                table = pa.Table.from_batches([batch])
                ids = pc.index_in(table.column("label"), value_set=names).cast(pa.int32())
                sink.write(table.set_column(where, CORPUS_SCHEMA.field("label_id"), ids))
                del table, ids, batch
                pa.default_memory_pool().release_unused()

    def close(self) -> None:
        self._close_writer()
        self._dir.cleanup()


class _Emit:
    """Writes a batch's rejects and corpus rows to the sink (rows to the spill while label
    ids wait for inferred names), and to the per-file cache entry being written, if any."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.reasons: Counter[str] = Counter()
        self.wrote_rejects = False
        self.entry: EntryWriter | None = None

    def rejects(self, table: pa.Table, reasons: Any) -> None:
        if table.num_rows == 0:
            return
        self.sink.write(table, rejects=True)
        self.wrote_rejects = True
        self.reasons.update(reasons)
        if self.entry is not None:
            self.entry.write(table, rejects=True)

    def rows(self, table: pa.Table, spill: _Spill | None) -> None:
        if table.num_rows == 0:
            return
        (spill if spill is not None else self.sink).write(table)
        if self.entry is not None:
            self.entry.write(table)


def _diff(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    reasons = Counter(after["rejects_by_reason"])
    reasons.subtract(before["rejects_by_reason"])
    return {"rows_read": after["rows_read"] - before["rows_read"],
            "rows_out": after["rows_out"] - before["rows_out"],
            "duplicates_kept": after["duplicates_kept"] - before["duplicates_kept"],
            "rejects_by_reason": {k: v for k, v in reasons.items() if v}}


def _replay(entry: Entry, builder: SplitBuilder, emit: _Emit, spill: _Spill | None,
            name: str, file_index: int, batch_rows: int) -> None:
    """Write a verified cache entry's rows and rejects as a fresh parse of its file would."""
    with pa.OSFile(str(entry.rejects), "rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=batch_rows):
            table = pa.Table.from_batches([batch]).cast(REJECTS_SCHEMA)
            emit.rejects(table, table.column("reason").to_pylist())
    with pa.OSFile(str(entry.corpus), "rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=batch_rows):
            table = pa.Table.from_batches([batch]).cast(CORPUS_SCHEMA)
            builder.replay(table.column("example_id").to_pylist(),
                           table.column("source_row").to_pylist(),
                           table.column("label").to_pylist(), name, file_index)
            emit.rows(table, spill)
    builder.add_counts(entry.meta)


def no_usable_rows(source: str, reasons: dict[str, int], label_names: list[str] | None
                   ) -> str:
    """Why a training source gave no row, and what to do: its reject reasons, and for labels
    outside a preset's the label names they must be."""
    counted = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items(),
                                                                 key=lambda kv: -kv[1]))
    message = (f"{source}: no usable training rows ({sum(reasons.values())} rejected: "
               f"{counted})")
    if reasons.get("unknown_label") and label_names:
        message += (f"; the labels must be {', '.join(label_names)} (the dataset's label "
                    "names): map them with the source's label_map, or set data.dataset: null "
                    "for your own labels")
    return message


def stream_dataset(spec: DatasetSpec, data_dir: Path | None, sink: Sink,
                   max_chars: int | None = None, spill_dir: Path | None = None,
                   batch_rows: int | None = None,
                   file_cache: FileCache | None = None,
                   unusable: list[str] | None = None) -> IngestSummary:
    """Read the train and eval splits of `spec` batch by batch into `sink`: corpus rows
    (train, then eval, in file order) and rejects (`sink.write(table, rejects=True)`).

    `max_chars` is the text length limit for sources that set none (None: DEFAULT_MAX_CHARS);
    `spill_dir` holds the training rows while inferred label names are not yet known (None:
    the system's temporary folder). With `file_cache`, a source of several files (a folder
    or a glob) reuses the rows and rejects of files an earlier ingest read with the same
    settings after the same files (`file_cache.py`), and parses only the others; the output
    is the same. An error leaves what was written to the sink incomplete. With `unusable`
    (a list), a training split that a run could not use (no usable row, one class) is noted
    there and read on, so that every reject is still listed (`textdistill validate`).
    """
    if max_chars is not None and max_chars < 1:
        raise ConfigError(f"max_chars must be 1 or more, got {max_chars}")
    batch_rows = batch_rows or BATCH_ROWS
    sources = resolve_sources(spec, data_dir)
    label_names = list(spec.label_names) if spec.label_names is not None else None
    summary = IngestSummary(label_names=[])
    emit = _Emit(sink)
    seen_labels: list[str] = []  # an unusable training split's labels (`unusable` noted)
    for source in sources:
        limit = max_chars_of(source, max_chars)
        builder = SplitBuilder(source.split, source.columns, source.name, label_names, limit)
        spill = _Spill(spill_dir) if label_names is None else None
        index = {name: i for i, name in enumerate(label_names or [])}

        def put(name: str, out: BatchOut, spill: _Spill | None = spill,
                index: dict[str, int] = index, split: str = source.split) -> None:
            if out.rejects:
                emit.rejects(rejects_table(out.rejects), (r["reason"] for r in out.rejects))
            if out.ids:
                ids = None if spill is not None else [index[label] for label in out.labels]
                emit.rows(_corpus_table(split, name, out, ids), spill)

        reuse: dict[str, Any] = {}
        try:
            if file_cache is not None and source.many:
                settings = {"split": source.split, "columns": source.columns.model_dump(
                    mode="json", exclude={"path"}), "known_labels": label_names, "max_chars": limit}
                reuse = _read_files(source, builder, emit, spill, put, file_cache, settings,
                                    batch_rows)
            else:
                for name, file_index, records in record_batches(source, batch_rows):
                    put(name, builder.add_batch(records, name, file_index))
            if source.split == "train":
                problem = None
                if builder.rows_out == 0:
                    problem = no_usable_rows(source.name, builder.rejects_by_reason, label_names)
                elif len(builder.labels_seen) < 2:
                    problem = (f"{source.name}: every usable training row has the label "
                               f"{next(iter(builder.labels_seen))!r}; distillation needs two "
                               "classes or more")
                if problem is not None:
                    if unusable is None:
                        raise IngestError(problem)
                    unusable.append(problem)
                    seen_labels = _natural_sort(builder.labels_seen)
                    # labels inferred from an unusable split are no rule for the eval split:
                    # it is read with any label (its other problems are still listed)
                elif label_names is None:
                    label_names = _natural_sort(builder.labels_seen)
                    assert spill is not None
                    spill.replay(sink, label_names)
        finally:
            if spill is not None:
                spill.close()
        summary.rows_by_split[source.split] = builder.rows_out
        identity = source.identity()
        if reuse:
            for item in identity["files"]:
                item["reused"] = item["file"] in reuse["reused_files"]
            reuse.pop("reused_files")
        summary.sources.append({
            "split": source.split, "source": source.name, "rows_read": builder.rows_read,
            "rows_out": builder.rows_out, "rows_rejected": builder.rows_rejected,
            "duplicates_kept": builder.duplicates_kept,
            "rejects_by_reason": dict(builder.rejects_by_reason),
            **identity, **reuse,
        })
    if not emit.wrote_rejects:  # the rejects table exists, empty, with its schema
        sink.write(rejects_table([]), rejects=True)
    summary.label_names = label_names if label_names is not None else seen_labels
    summary.rejects_by_reason = dict(emit.reasons)
    return summary


def _read_files(source: ResolvedSource, builder: SplitBuilder, emit: _Emit,
                spill: _Spill | None, put: Any, cache: FileCache, settings: dict[str, Any],
                batch_rows: int) -> dict[str, Any]:
    """Read a source of several files one file at a time: a file whose cache entry (same
    settings, same file and same files before it) verifies is replayed, any other is parsed
    and its entry written. Returns what was reused and parsed, for the manifest."""
    assert source.file is not None
    chain: list[tuple[str, str]] = []
    stats: dict[str, Any] = {"files_reused": 0, "files_parsed": 0, "rows_reused": 0,
                             "rows_parsed": 0, "reused_files": set()}
    dropped_before = len(cache.dropped)
    for file_index, path in enumerate(source.files()):
        name = str(path)
        chain.append((name, _sha256(path)))
        key = cache.key(settings, chain)
        entry = cache.load(key)
        if entry is not None:
            _replay(entry, builder, emit, spill, name, file_index, batch_rows)
            stats["files_reused"] += 1
            stats["rows_reused"] += entry.meta["rows_read"]
            stats["reused_files"].add(name)
            continue
        before = builder.file_counts()
        emit.entry = cache.writer(key, CORPUS_SCHEMA, REJECTS_SCHEMA)
        try:
            records = read_file(path, file_source_for(source.file, path, True))
            for chunk in _chunks(records, batch_rows):
                put(name, builder.add_batch(chunk, name, file_index))
            emit.entry.commit({"file": name, **_diff(builder.file_counts(), before)})
        except BaseException:
            emit.entry.abort()
            raise
        finally:
            emit.entry = None
        stats["files_parsed"] += 1
        stats["rows_parsed"] += builder.rows_read - before["rows_read"]
    if len(cache.dropped) > dropped_before:
        stats["cache_dropped"] = cache.dropped[dropped_before:]
    return stats


class _Collect:
    """A sink that keeps every batch, for `ingest_dataset`'s whole tables."""

    def __init__(self) -> None:
        self.tables: dict[bool, list[pa.Table]] = {False: [], True: []}

    def write(self, table: pa.Table, rejects: bool = False) -> None:
        self.tables[rejects].append(table)

    def table(self, rejects: bool, schema: pa.Schema) -> pa.Table:
        tables = self.tables[rejects]
        return pa.concat_tables(tables).combine_chunks() if tables else schema.empty_table()


def ingest_dataset(spec: DatasetSpec, data_dir: Path | None,
                   max_chars: int | None = None, note_unusable: bool = False) -> IngestResult:
    """Read the train and eval splits of `spec` into one corpus table and one rejects table
    (in memory: a pipeline run streams them to its run folder with `stream_dataset`).

    `max_chars` is the text length limit for sources that set none (None: DEFAULT_MAX_CHARS);
    longer values are rejected as `too_long`. `note_unusable`: a training split a run could
    not use goes to `unusable` instead of raising.
    """
    sink = _Collect()
    unusable: list[str] | None = [] if note_unusable else None
    summary = stream_dataset(spec, data_dir, sink, max_chars=max_chars, unusable=unusable)
    return IngestResult(corpus=sink.table(False, CORPUS_SCHEMA),
                        rejects=sink.table(True, rejects_table([]).schema),
                        label_names=summary.label_names, sources=summary.sources,
                        unusable=unusable or [])
