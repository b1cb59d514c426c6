"""Writes one stage's rows into a run folder part by part, then publishes them whole.

Split from `store` (which reads, verifies and caches stages) so that each module has one job:
`StageWriter` rolls batches into Parquet parts of `ROWS_PER_PART` rows in a temporary folder
(or an object store attempt prefix), takes in checked copies of earlier parts, and publishes
the stage by writing its manifest last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill_core.artifacts import layout, objectstore
from distill_core.artifacts.location import RemotePath, Where
from distill_core.artifacts.parts import (
    DATA,
    MANIFEST,
    REJECTS,
    part_records,
    remember_sha256,
)
from distill_core.artifacts.parts import intact as _intact
from distill_core.artifacts.parts import made_from_of as _made_from_of
from distill_core.artifacts.parts import temp_suffix as _temp_suffix
from distill_core.artifacts.vector_storage import (
    pack_table,
    packed_schema,
    unpacked_schema,
)
from distill_core.errors import ArtifactError

if TYPE_CHECKING:
    from distill_core.artifacts.store import RunStore

ROWS_PER_PART = 200_000

COPY_CHUNK = 8 << 20  # bytes read (and written) at a time by `copy_hashed`


def copy_hashed(source: Path, target: Path) -> tuple[str, int]:
    """Copy a file and hash the copy: (sha256, size) of what was written.

    The kernel copies (`os.copy_file_range`: no pass through this process's buffers, and a
    copy-on-write clone where the file system has them, e.g. XFS or btrfs), then the copy
    is read back and hashed: 2.5x faster than passing the bytes through here on this
    host's ext4 (`benchmarks/bench_copy_hashed.py`). Where the kernel will not copy between
    the two files, the bytes pass through here and are hashed on the way
    (`copy_through_hashed`). Either way the target is a file of its own, never a link: an
    edit to it cannot change the source (issue 17)."""
    try:
        _kernel_copy(source, target)
    except OSError:
        return copy_through_hashed(source, target)
    digest, size = hashlib.sha256(), 0
    with open(target, "rb") as reader:
        while chunk := reader.read(COPY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _kernel_copy(source: Path, target: Path) -> None:
    """`source`'s bytes into a new `target` by `os.copy_file_range`; OSError when the call is
    missing, refused, or stops before the source's end (the caller then copies itself)."""
    if not hasattr(os, "copy_file_range"):
        raise OSError("os.copy_file_range is not available here")
    with open(source, "rb") as reader, open(target, "wb") as writer:
        left = os.fstat(reader.fileno()).st_size
        while left > 0:
            copied = os.copy_file_range(reader.fileno(), writer.fileno(), left)
            if copied == 0:
                raise OSError(f"{source}: copy_file_range stopped {left} bytes before the end")
            left -= copied


def copy_through_hashed(source: Path, target: Path) -> tuple[str, int]:
    """Copy a file through this process, hashing its bytes as they pass: (sha256, size) of
    what was written."""
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(COPY_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def publish_folder(tmp: Path, final: Path, attempts: int = 5) -> None:
    """Rename a finished temporary folder into place.

    When another process published the same stage with the same fingerprint from the
    same inputs meanwhile (concurrent runs of one config), its copy is identical and
    stays; any other copy is replaced. Readers see a whole stage.
    """
    ours = _made_from_of(tmp)
    for _ in range(attempts):
        if final.exists():
            if ours is not None and _made_from_of(final) == ours and _intact(final):
                shutil.rmtree(tmp, ignore_errors=True)
                return
            stale = final.with_name(f".{final.name}.{_temp_suffix('stale')}")
            try:
                final.rename(stale)
            except FileNotFoundError:
                continue  # someone else moved it: look again
            shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp.rename(final)
            return
        except OSError:
            if not final.exists():
                raise
    raise ArtifactError(f"{final}: could not publish the stage (concurrent writers)")


def remove_folder(folder: Where) -> None:
    """Delete a folder of a run (local disk) or the objects under a prefix (object store)."""
    if isinstance(folder, RemotePath):
        folder.remove_tree()
    else:
        shutil.rmtree(folder, ignore_errors=True)


def drop_folder(folder: Path) -> None:
    """Delete a local folder readers may be looking at: renamed away to a stale name first
    (so nothing finds half of it; the next writer collects it if the delete is cut short),
    then removed. A folder already gone is no error."""
    stale = folder.with_name(f".{folder.name}.{_temp_suffix('stale')}")
    try:
        folder.rename(stale)
    except FileNotFoundError:
        return
    shutil.rmtree(stale, ignore_errors=True)


class StageWriter:
    """Writes one stage's rows (and rejects) as they are produced, then publishes them whole.

    A streaming stage calls `write` once per batch, so no stage has to hold its whole output
    in memory; batches roll into Parquet parts of `ROWS_PER_PART` rows (laid out by `layout`:
    vectors uncompressed, in row groups of ~16 MiB) in a hidden temporary folder (on an
    object store: under the writer's own attempt prefix, each part uploaded as it closes).
    Row groups have a fixed number of rows (`layout.group_rows`) whatever the sizes of the
    written batches, so a part's bytes depend only on its rows: the same rows give the same
    sha256, and a rerun's parts can be matched to an earlier run's by their digests. A stage
    can close the open part early (`end_part`) and take in a checked copy of a part written
    before (`adopt`: the signals stage's per-part cache). Nothing is visible to readers until
    `publish` writes the manifest (naming each part with its size and sha256), then renames
    the folder into place (local disk) or is itself the last upload (object store); `abort`
    removes what was not published. Every
    batch of one kind must have the same schema.
    """

    def __init__(self, store: RunStore, stage: str) -> None:
        self.store, self.stage = store, stage
        store.root.mkdir(parents=True, exist_ok=True)
        store.collect_orphans()
        self.attempt: str | None = None
        if isinstance(store.root, RemotePath):
            self.attempt, self.tmp = objectstore.new_attempt(store.root / stage)
        else:
            self.tmp = store.root / f".{stage}.{_temp_suffix('tmp')}"
        self.rows: dict[str, int] = {DATA: 0, REJECTS: 0}
        self._files: dict[str, list[str]] = {DATA: [], REJECTS: []}
        self._open: dict[str, pq.ParquetWriter] = {}
        self._sinks: dict[str, objectstore.HashingSink] = {}
        self._records: dict[str, dict[str, Any]] = {}  # object stores: parts uploaded so far
        self._in_part: dict[str, int] = {}
        self._schemas: dict[str, pa.Schema] = {}
        self._pending: dict[str, pa.Table] = {}  # rows written that fill no whole group yet
        self._segment = 0  # first data part since the last `end_part`
        self._published = False
        self._packs = layout.packs_vectors(stage)  # vectors packed as binary on disk

    def write(self, table: pa.Table, rejects: bool = False) -> None:
        """Append a batch of rows (or of rejects) to the stage."""
        kind = REJECTS if rejects else DATA
        if kind in self._schemas and not table.schema.equals(self._schemas[kind]):
            raise ArtifactError(f"{self.stage}: a batch of {kind} has another schema than the "
                                f"first ({table.schema} against {self._schemas[kind]})")
        self._schemas.setdefault(kind, table.schema)
        pending = self._pending.get(kind)
        self._pending[kind] = table if pending is None else pa.concat_tables([pending, table])
        self.rows[kind] += table.num_rows
        self._drain(kind, final=False)

    def _drain(self, kind: str, final: bool) -> None:
        """Write the pending rows of `kind` in whole row groups (`layout.group_rows` rows, or
        what is left of the part); `final`: the rest too, as a last shorter group."""
        pending = self._pending.get(kind)
        if pending is None:
            return
        group = layout.group_rows(self._schemas[kind])
        offset = 0
        while offset < pending.num_rows:
            room = ROWS_PER_PART - self._in_part.get(kind, 0) if kind in self._open \
                else ROWS_PER_PART
            take = min(group, room)
            if pending.num_rows - offset < take:
                if not final:
                    break
                take = pending.num_rows - offset
            if kind not in self._open:
                self._roll(kind)
            piece = pending.slice(offset, take)
            self._open[kind].write_table(pack_table(piece) if self._packs else piece,
                                         row_group_size=take)
            self._in_part[kind] += take
            offset += take
            if self._in_part[kind] >= ROWS_PER_PART:
                self._close(kind)
        if offset < pending.num_rows:
            self._pending[kind] = pending.slice(offset)
        else:
            del self._pending[kind]

    def end_part(self) -> list[Where]:
        """Close the open data part (after writing its pending rows) and return the data parts
        closed since the last call: the rows written since then, as files."""
        self._drain(DATA, final=True)
        if DATA in self._open:
            self._close(DATA)
        names = self._files[DATA][self._segment:]
        self._segment = len(self._files[DATA])
        return [self.tmp / name for name in names]

    def adopt(self, source: Path, record: dict[str, Any]) -> str | None:
        """Take in a copy of `source`, a data part written before with this stage's schema, as
        the next data part (after `end_part`), checking the bytes against `record` (`bytes`,
        `sha256`) once copied (`copy_hashed`). Returns None when it was taken in; else what
        did not match, and nothing was kept. Local runs folders only."""
        if isinstance(self.tmp, RemotePath):
            raise ArtifactError(f"{self.stage}: parts are adopted on a local runs folder only")
        self.end_part()
        try:
            schema = pq.read_schema(source)
        except (OSError, pa.ArrowInvalid) as exc:
            return f"{source.name} is not readable ({exc})"
        if DATA in self._schemas and not schema.equals(self._stored(self._schemas[DATA])):
            return f"{source.name} has another schema than the stage's rows"
        folder = self.tmp / DATA
        folder.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        name = f"{DATA}/part-{len(self._files[DATA]):05d}.parquet"
        target = self.tmp / name
        digest, size = copy_hashed(source, target)  # type: ignore[arg-type]
        if size != record.get("bytes") or digest != record.get("sha256"):
            target.unlink()  # type: ignore[union-attr]
            return (f"{source.name} has {size} bytes and sha256 {digest[:12]}, its record "
                    f"says {record.get('bytes')} and {str(record.get('sha256'))[:12]}")
        remember_sha256(target, digest)
        self._schemas.setdefault(DATA, unpacked_schema(schema))
        self._files[DATA].append(name)
        self.rows[DATA] += pq.ParquetFile(target).metadata.num_rows
        self._segment = len(self._files[DATA])
        return None

    def _stored(self, schema: pa.Schema) -> pa.Schema:
        """The schema of this stage's parts on disk for rows of `schema`."""
        return packed_schema(schema) if self._packs else schema

    def _roll(self, kind: str) -> None:
        folder = self.tmp / kind
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{len(self._files[kind]):05d}.parquet"
        options = layout.writer_options(self._schemas[kind])  # vectors: plain, uncompressed
        stored = self._stored(self._schemas[kind])
        if isinstance(folder, RemotePath):
            sink = self._sinks[kind] = objectstore.HashingSink(folder / name)
            self._open[kind] = pq.ParquetWriter(sink.arrow_file(), stored, **options)
        else:
            self._open[kind] = pq.ParquetWriter(folder / name, stored, **options)
        self._in_part[kind] = 0
        self._files[kind].append(f"{kind}/{name}")

    def _close(self, kind: str) -> None:
        """Finish the open part of `kind` (on an object store: its upload completes)."""
        self._open.pop(kind).close()
        if kind in self._sinks:
            sink = self._sinks.pop(kind)
            sink.close()
            self._records[self._files[kind][-1]] = sink.record()

    def publish(self, manifest: dict[str, Any],
                extra_files: dict[str, str] | None = None) -> Where:
        """Close the parts, write the extra text files and the manifest, rename into place
        (object store: the manifest, naming this writer's attempt, is the last upload)."""
        for kind in list(self._pending):
            self._drain(kind, final=True)
        for kind in list(self._open):
            self._close(kind)
        for kind in (DATA, REJECTS):  # an empty table still leaves one part with its schema
            if not self._files[kind] and kind in self._schemas:
                self._roll(kind)
                self._close(kind)
        if not self._files[DATA]:
            raise ArtifactError(f"{self.stage}: the stage wrote no rows and no schema")
        files = self._files[DATA] + self._files[REJECTS]
        for name, text in (extra_files or {}).items():
            (self.tmp / name).write_text(text, encoding="utf-8")
            files.append(name)
        remote = isinstance(self.tmp, RemotePath)
        records = ({**part_records(self.tmp, [f for f in files if f not in self._records]),
                    **self._records} if remote else part_records(self.tmp, files))
        manifest = {**manifest, "files": files, "run_id": self.store.run_id,
                    "parts": {name: records[name] for name in files}}
        final = self.store.stage_dir(self.stage)
        if remote:
            manifest["attempt"] = self.attempt
        else:
            (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str),
                                             encoding="utf-8")
        if self.store.before_publish is not None:
            self.store.before_publish(self.stage)
        if remote:
            objectstore.publish(final, manifest)  # type: ignore[arg-type]
        else:
            publish_folder(self.tmp, final)  # type: ignore[arg-type]
        self._published = True
        return final

    def abort(self) -> None:
        """Drop what was written and not published (safe to call after `publish`)."""
        self._pending.clear()
        for kind in list(self._open):
            try:
                self._close(kind)
            except OSError:
                pass
        if self._published and isinstance(self.tmp, RemotePath):
            return  # the attempt is the published stage (or was deleted by `publish`)
        if self.tmp.exists():
            remove_folder(self.tmp)
