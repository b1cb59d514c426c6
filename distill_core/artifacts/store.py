"""A run folder of stage artifacts: Parquet parts, a rejects table and a manifest per stage.

Layout: `<runs>/<run_id>/<stage>/data/part-*.parquet` (the stage's rows),
`<stage>/rejects/part-*.parquet` and `<stage>/manifest.json`. The rows sit in a folder of
their own, so `pandas.read_parquet(<stage>/data)`, `pyarrow.dataset`, DuckDB
`read_parquet('<stage>/data/*.parquet')` and `datasets.load_dataset("parquet",
data_dir=<stage>/data)` read a stage directly. A stage is written into a hidden temporary
folder and renamed into place, so a crash never leaves half an artifact and a reader sees
either nothing or the whole stage. A stage whose manifest carries the expected
fingerprint is complete and is skipped on rerun.

Stages whose output does not depend on the run (ingest, signals, teacher) are
also kept in `<runs>/.cache/<stage>/<fingerprint>/`, so another run with the
same data and model reuses them. Cache entries are copies, never hard links: an
edit to one run's files cannot change another run or the cache.

Verify on read: the manifest records every part's size and sha256; a stage is
complete only when its parts still match, `read` refuses parts that do not, and
a cache entry that does not match is dropped and recomputed. Readers trust only
the parts a manifest names. A stage written by an older version with its parts beside the
manifest (no `data/`) does not verify, so it is recomputed in the current layout. Temporary
and stale folders carry the writer's host and PID; the next writer collects those whose
process is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill_core.errors import ArtifactError

MANIFEST = "manifest.json"
DATA = "data"  # the stage's rows: `<stage>/data/part-*.parquet`
REJECTS = "rejects"  # its dropped rows: `<stage>/rejects/part-*.parquet`
ROWS_PER_PART = 200_000


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a folder file by file (copies, not links: see the module doc)."""
    for path in source.rglob("*"):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


_HOST = socket.gethostname().replace("-", "_")[:32]
_SHA_MEMO: dict[tuple[str, int, int, int], str] = {}  # (path, inode, mtime_ns, size) -> sha256
ORPHAN_AGE_S = 24 * 3600  # another host's temporary folder is collected after a day


def _temp_suffix(kind: str) -> str:
    """`<kind>-<pid>-<random>-<host>`: whose temporary folder, for orphan collection."""
    return f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}-{_HOST}"


def _orphaned(name: str) -> bool:
    """A temporary or stale folder name whose writing process is gone (see `_temp_suffix`)."""
    for kind in (".tmp-", ".stale-"):
        if kind in name:
            fields = name.split(kind, 1)[1].split("-")
            break
    else:
        return False
    if len(fields) >= 3 and fields[0].isdigit() and fields[2] == _HOST:
        return not _alive(int(fields[0]))
    return False


def file_sha256(path: Path) -> str:
    """sha256 of one file, remembered by (path, inode, mtime, size) within the process."""
    import hashlib

    info = path.stat()
    key = (str(path), info.st_ino, info.st_mtime_ns, info.st_size)
    if key not in _SHA_MEMO:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA_MEMO[key] = digest.hexdigest()
    return _SHA_MEMO[key]


def part_records(folder: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What a manifest records of each part: its size and sha256."""
    return {name: {"bytes": (folder / name).stat().st_size,
                   "sha256": file_sha256(folder / name)} for name in names}


def named_parts(folder: Path, manifest: dict[str, Any], rejects: bool = False) -> list[Path]:
    """The Parquet parts `manifest` names in `folder`: the rows (`data/`) or the rejects."""
    prefix = f"{REJECTS if rejects else DATA}/"
    return [folder / n for n in sorted(manifest.get("parts") or {})
            if n.startswith(prefix) and n.endswith(".parquet")]


def verify_folder(folder: Path, manifest: dict[str, Any]) -> str | None:
    """None when every part the manifest names is there with its recorded size and sha256;
    else what is wrong, in words."""
    records = manifest.get("parts")
    if not isinstance(records, dict):
        return "its manifest records no part checksums (written by an older version)"
    if not any(name.startswith(f"{DATA}/") for name in records):
        return f"its parts are not in {DATA}/ (the layout of an older version)"
    for name, record in sorted(records.items()):
        path = folder / name
        if not path.is_file():
            return f"part {name} is missing"
        if path.stat().st_size != record.get("bytes"):
            return (f"part {name} has {path.stat().st_size} bytes, the manifest recorded "
                    f"{record.get('bytes')}")
        if file_sha256(path) != record.get("sha256"):
            return f"part {name} changed since it was written (sha256 differs)"
    return None


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """A folder's manifest; None when there is none. A manifest that is not JSON is an error
    naming the file and what to do."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not a readable manifest ({exc}); delete the folder "
                            f"{folder} so the next run recomputes it") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: not a manifest (expected a JSON object); delete the "
                            f"folder {folder} so the next run recomputes it")
    return manifest


def _intact(folder: Path) -> bool:
    try:
        manifest = _read_manifest(folder)
    except ArtifactError:
        return False
    return manifest is not None and verify_folder(folder, manifest) is None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fingerprint_of(folder: Path) -> str | None:
    try:
        manifest = _read_manifest(folder)
    except (OSError, ArtifactError):
        return None
    return None if manifest is None else manifest.get("fingerprint")


def _publish(tmp: Path, final: Path, attempts: int = 5) -> None:
    """Rename a finished temporary folder into place.

    When another process published the same stage with the same fingerprint
    meanwhile (concurrent runs of one config), its copy is identical and stays;
    a copy with another fingerprint is replaced. Readers see a whole stage.
    """
    ours = _fingerprint_of(tmp)
    for _ in range(attempts):
        if final.exists():
            if ours is not None and _fingerprint_of(final) == ours and _intact(final):
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


class RunStore:
    """Reads and writes the stage artifacts of one run."""

    def __init__(self, runs_dir: str | Path, run_id: str) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.run_id = run_id
        self.root = self.runs_dir / run_id
        self.cache_root = self.runs_dir / ".cache"
        # Called with the stage name just before a written stage is published (fault drills).
        self.before_publish: Callable[[str], None] | None = None
        # Stages found with a matching fingerprint whose parts no longer verify, and why.
        self.invalid: dict[str, str] = {}

    @classmethod
    def open(cls, run_dir: str | Path) -> RunStore:
        """An existing run folder (for audit and report)."""
        folder = Path(run_dir).resolve()
        if not folder.is_dir():
            raise ArtifactError(f"{folder}: run folder not found")
        return cls(folder.parent, folder.name)

    @classmethod
    def open_or_create(cls, run_dir: str | Path) -> RunStore:
        """A run folder that may not exist yet (the first stage creates it)."""
        folder = Path(run_dir).resolve()
        return cls(folder.parent, folder.name)

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def data_dir(self, stage: str) -> Path:
        """The folder of the stage's row parts (read it with pandas, pyarrow, DuckDB)."""
        return self.root / stage / DATA

    def manifest(self, stage: str) -> dict[str, Any] | None:
        return _read_manifest(self.stage_dir(stage))

    def stages(self) -> list[str]:
        """Completed stages of this run, in the order they finished."""
        found = [(m.get("finished_at", ""), p.name) for p in self.root.iterdir()
                 if p.is_dir() and not p.name.startswith(".")
                 and (m := self.manifest(p.name)) is not None] if self.root.is_dir() else []
        return [name for _, name in sorted(found)]

    def verify(self, stage: str) -> str | None:
        """None when the stage's parts match its manifest; else what is wrong."""
        manifest = self.manifest(stage)
        if manifest is None:
            return "it has not run"
        return verify_folder(self.stage_dir(stage), manifest)

    def is_complete(self, stage: str, fingerprint: str) -> bool:
        """The stage is here with this fingerprint and its parts verify. A stage with the
        fingerprint whose parts do not is remembered in `invalid` (the rerun says why)."""
        manifest = self.manifest(stage)
        if manifest is None or manifest.get("fingerprint") != fingerprint:
            return False
        problem = verify_folder(self.stage_dir(stage), manifest)
        if problem is not None:
            self.invalid[stage] = f"{self.stage_dir(stage)}: {problem}"
        return problem is None

    def parts(self, stage: str, rejects: bool = False) -> list[Path]:
        """The stage's parts that its manifest names (a file it does not name is not read)."""
        manifest = self.manifest(stage)
        return [] if manifest is None else named_parts(self.stage_dir(stage), manifest, rejects)

    def read(self, stage: str, rejects: bool = False, columns: list[str] | None = None) -> pa.Table:
        """The stage's table (or its rejects), after checking its parts against the manifest."""
        if (problem := self.verify(stage)) is not None and self.manifest(stage) is not None:
            raise ArtifactError(f"{self.stage_dir(stage)}: {problem}; rerun the command to "
                                "recompute the stage")
        paths = self.parts(stage, rejects)
        if not paths:
            if rejects and self.manifest(stage) is not None:
                raise ArtifactError(f"{self.stage_dir(stage)}: the stage wrote no rejects")
            raise ArtifactError(f"{self.stage_dir(stage)}: no {'rejects ' if rejects else ''}"
                                "artifact (has the stage run?)")
        return pa.concat_tables([pq.read_table(p, columns=columns) for p in paths])

    def stage_writer(self, stage: str) -> StageWriter:
        """A writer that takes the stage's rows batch by batch (see `StageWriter`)."""
        return StageWriter(self, stage)

    def write_stage(self, stage: str, table: pa.Table, manifest: dict[str, Any],
                    rejects: pa.Table | None = None,
                    extra_files: dict[str, str] | None = None) -> Path:
        """Write a stage atomically: parts, rejects, extra text files, then the manifest
        (with each part's size and sha256)."""
        writer = self.stage_writer(stage)
        try:
            writer.write(table)
            if rejects is not None:
                writer.write(rejects, rejects=True)
            return writer.publish(manifest, extra_files)
        finally:
            writer.abort()

    def collect_orphans(self) -> list[Path]:
        """Delete the temporary and stale folders, in this run and in the cache, whose
        writer is gone (same host, PID not alive); returns what was removed."""
        removed = []
        places = [self.root] + ([p for p in self.cache_root.iterdir() if p.is_dir()]
                                if self.cache_root.is_dir() else [])
        for place in places:
            for folder in place.glob(".*"):
                if folder.is_dir() and _orphaned(folder.name):
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        return removed

    # -- cross-run cache -------------------------------------------------------------------

    def _cache_dir(self, stage: str, fingerprint: str) -> Path:
        return self.cache_root / stage / fingerprint

    def save_to_cache(self, stage: str) -> None:
        """Copy a verified stage into the cache (replacing an entry that no longer verifies)."""
        manifest = self.manifest(stage)
        if manifest is None or self.verify(stage) is not None:
            return
        target = self._cache_dir(stage, manifest["fingerprint"])
        if target.exists():
            if _intact(target):
                return
            self._drop(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{_temp_suffix('tmp')}")
        _copy_tree(self.stage_dir(stage), tmp)
        try:
            tmp.rename(target)
        except OSError:  # another run cached it first
            shutil.rmtree(tmp, ignore_errors=True)

    def cache_entry(self, stage: str, fingerprint: str) -> Path | None:
        """The cache folder holding this stage and fingerprint, when it is there and intact."""
        folder = self._cache_dir(stage, fingerprint)
        return folder if _intact(folder) else None

    def _drop(self, folder: Path) -> None:
        stale = folder.with_name(f".{folder.name}.{_temp_suffix('stale')}")
        try:
            folder.rename(stale)
        except FileNotFoundError:
            return
        shutil.rmtree(stale, ignore_errors=True)

    def restore_from_cache(self, stage: str, fingerprint: str) -> bool:
        """Copy a cached stage into this run; True when the cache had it intact. An entry
        that no longer matches its manifest is dropped (and noted in `invalid`)."""
        source = self._cache_dir(stage, fingerprint)
        try:
            manifest = _read_manifest(source)
        except ArtifactError as exc:
            self.invalid[stage] = str(exc)
            self._drop(source)
            return False
        if manifest is None:
            return False
        if (problem := verify_folder(source, manifest)) is not None:
            self.invalid[stage] = f"cache entry {source}: {problem}"
            self._drop(source)
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{stage}.{_temp_suffix('tmp')}"
        _copy_tree(source, tmp)
        manifest["cache"] = {"hit": True, "from_run": manifest.get("run_id")}
        manifest["run_id"] = self.run_id
        if stage in self.invalid:  # this run's own copy had changed: say why it was replaced
            manifest["restored_because"] = self.invalid[stage]
        (tmp / MANIFEST).unlink()
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        if verify_folder(tmp, manifest) is not None:  # changed while it was copied
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        _publish(tmp, self.stage_dir(stage))
        return True


class StageWriter:
    """Writes one stage's rows (and rejects) as they are produced, then publishes them whole.

    A streaming stage calls `write` once per batch, so no stage has to hold its whole output
    in memory; batches roll into Parquet parts of `ROWS_PER_PART` rows in a hidden temporary
    folder. Nothing is visible to readers until `publish` writes the manifest (naming each
    part with its size and sha256) and renames the folder into place; `abort` removes an
    unpublished folder. Every batch of one kind must have the same schema.
    """

    def __init__(self, store: RunStore, stage: str) -> None:
        self.store, self.stage = store, stage
        store.root.mkdir(parents=True, exist_ok=True)
        store.collect_orphans()
        self.tmp = store.root / f".{stage}.{_temp_suffix('tmp')}"
        self.rows: dict[str, int] = {DATA: 0, REJECTS: 0}
        self._files: dict[str, list[str]] = {DATA: [], REJECTS: []}
        self._open: dict[str, pq.ParquetWriter] = {}
        self._in_part: dict[str, int] = {}
        self._schemas: dict[str, pa.Schema] = {}
        self._published = False

    def write(self, table: pa.Table, rejects: bool = False) -> None:
        """Append a batch of rows (or of rejects) to the stage."""
        kind = REJECTS if rejects else DATA
        if kind in self._schemas and not table.schema.equals(self._schemas[kind]):
            raise ArtifactError(f"{self.stage}: a batch of {kind} has another schema than the "
                                f"first ({table.schema} against {self._schemas[kind]})")
        self._schemas.setdefault(kind, table.schema)
        offset = 0
        while offset < table.num_rows:
            if kind not in self._open:
                self._roll(kind)
            room = ROWS_PER_PART - self._in_part[kind]
            piece = table.slice(offset, room)
            self._open[kind].write_table(piece)
            self._in_part[kind] += piece.num_rows
            self.rows[kind] += piece.num_rows
            offset += piece.num_rows
            if self._in_part[kind] >= ROWS_PER_PART:
                self._open.pop(kind).close()

    def _roll(self, kind: str) -> None:
        folder = self.tmp / kind
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{len(self._files[kind]):05d}.parquet"
        self._open[kind] = pq.ParquetWriter(folder / name, self._schemas[kind])
        self._in_part[kind] = 0
        self._files[kind].append(f"{kind}/{name}")

    def publish(self, manifest: dict[str, Any],
                extra_files: dict[str, str] | None = None) -> Path:
        """Close the parts, write the extra text files and the manifest, rename into place."""
        for kind in list(self._open):
            self._open.pop(kind).close()
        for kind in (DATA, REJECTS):  # an empty table still leaves one part with its schema
            if not self._files[kind] and kind in self._schemas:
                self._roll(kind)
                self._open.pop(kind).close()
        if not self._files[DATA]:
            raise ArtifactError(f"{self.stage}: the stage wrote no rows and no schema")
        files = self._files[DATA] + self._files[REJECTS]
        for name, text in (extra_files or {}).items():
            (self.tmp / name).write_text(text, encoding="utf-8")
            files.append(name)
        manifest = {**manifest, "files": files, "run_id": self.store.run_id,
                    "parts": part_records(self.tmp, files)}
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str),
                                         encoding="utf-8")
        if self.store.before_publish is not None:
            self.store.before_publish(self.stage)
        _publish(self.tmp, self.store.stage_dir(self.stage))
        self._published = True
        return self.store.stage_dir(self.stage)

    def abort(self) -> None:
        """Drop what was written and not published (safe to call after `publish`)."""
        for kind in list(self._open):
            self._open.pop(kind).close()
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
