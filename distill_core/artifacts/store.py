"""A run folder of stage artifacts: Parquet parts, a rejects table and a manifest per stage.

Layout: `<runs>/<run_id>/<stage>/data/part-*.parquet` (the stage's rows),
`<stage>/rejects/part-*.parquet` and `<stage>/manifest.json`. The rows sit in a folder of
their own, so `pandas.read_parquet(<stage>/data)`, `pyarrow.dataset`, DuckDB
`read_parquet('<stage>/data/*.parquet')` and `datasets.load_dataset("parquet",
data_dir=<stage>/data)` read a stage directly (the vectors of `signals` and `teacher` as
packed binary: `vector_storage`). A stage is written into a hidden temporary
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

The runs folder may also be an object store URI (`s3://bucket/runs`, any pyarrow or fsspec
filesystem: see `location.py`). There is no rename there: a stage's parts go under an attempt
prefix of its writer and the manifest, written last, names them (see `objectstore.py`); the
cache copies the named parts and writes its manifest last too.

Writing a stage batch by batch is `stage_writer.StageWriter`'s job (`RunStore.stage_writer`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill_core.artifacts import objectstore
from distill_core.artifacts.cache_use import mark_used
from distill_core.artifacts.location import (
    RemotePath,
    Where,
    arrow_path,
    check_reachable,
    location,
)
from distill_core.artifacts.parts import (  # noqa: F401 - re-exported: the store's API
    _SHA_MEMO,
    ATTEMPTS,
    DATA,
    MANIFEST,
    REJECTS,
    file_sha256,
    named_parts,
    part_records,
    parts_base,
    remember_sha256,
    verify_folder,
)
from distill_core.artifacts.parts import HOST as _HOST  # noqa: F401
from distill_core.artifacts.parts import alive as _alive  # noqa: F401
from distill_core.artifacts.parts import intact as _intact
from distill_core.artifacts.parts import read_manifest as _read_manifest
from distill_core.artifacts.parts import temp_suffix as _temp_suffix
from distill_core.artifacts.parts import writer_gone as _orphaned
from distill_core.artifacts.stage_writer import StageWriter, drop_folder, publish_folder
from distill_core.artifacts.vector_storage import PartFile, unpack_table
from distill_core.errors import ArtifactError, ConfigError

ORPHAN_AGE_S = objectstore.ORPHAN_AGE_S


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a folder file by file (copies, not links: see the module doc)."""
    for path in source.rglob("*"):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


class RunStore:
    """Reads and writes the stage artifacts of one run (a local folder or an object store)."""

    def __init__(self, runs_dir: str | Path | RemotePath, run_id: str) -> None:
        self.runs_dir: Where = location(runs_dir)
        check_reachable(self.runs_dir)
        self.run_id = run_id
        self.root = self.runs_dir / run_id
        self.cache_root = self.runs_dir / ".cache"
        # Called with the stage name just before a written stage is published (fault drills).
        self.before_publish: Callable[[str], None] | None = None
        # Stages found with a matching fingerprint whose parts no longer verify, and why.
        self.invalid: dict[str, str] = {}

    @property
    def remote(self) -> bool:
        """The runs folder is an object store (publish by manifest, no rename)."""
        return isinstance(self.runs_dir, RemotePath)

    def scratch(self, prefix: str) -> Path:
        """A new hidden scratch path on local disk for a stage's spill files: in the run
        folder when it is local (the artifacts' disk), in the system's temporary folder when
        the runs folder is an object store. The caller creates and removes it."""
        import tempfile

        base = Path(tempfile.gettempdir()) if self.remote else self.root
        return base / f".{prefix}.{_temp_suffix('tmp')}"

    def local_cache_root(self, what: str) -> Path:
        """The cache folder for files kept outside the stage artifacts (model folders),
        which only a local runs folder holds for now: a one-line error naming `what` on an
        object store."""
        if isinstance(self.cache_root, RemotePath):
            raise ConfigError(f"{what} keeps a model folder in the runs folder's cache, which "
                              f"must be on a local or shared disk, not {self.runs_dir}; pass "
                              "--runs-dir DIR for this config")
        return self.cache_root

    @classmethod
    def open(cls, run_dir: str | Path | RemotePath) -> RunStore:
        """An existing run folder (for audit and report)."""
        folder = location(run_dir)
        check_reachable(folder)
        if not folder.is_dir():
            raise ArtifactError(f"{folder}: run folder not found")
        return cls(folder.parent, folder.name)

    @classmethod
    def open_or_create(cls, run_dir: str | Path | RemotePath) -> RunStore:
        """A run folder that may not exist yet (the first stage creates it)."""
        folder = location(run_dir)
        return cls(folder.parent, folder.name)

    def stage_dir(self, stage: str) -> Where:
        return self.root / stage

    def data_dir(self, stage: str) -> Where:
        """The folder of the stage's row parts (read it with pandas, pyarrow, DuckDB); on an
        object store, the data folder of the attempt its manifest names."""
        return parts_base(self.stage_dir(stage), self.manifest(stage) or {}) / DATA

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

    def is_complete(self, stage: str, fingerprint: str,
                    inputs_problem: Callable[[dict[str, Any]], str | None] | None = None,
                    ) -> bool:
        """The stage is here with this fingerprint, its recorded inputs pass
        `inputs_problem` and its parts verify. A stage with the fingerprint that fails
        either is remembered in `invalid` (the rerun says why)."""
        manifest = self.manifest(stage)
        if manifest is None or manifest.get("fingerprint") != fingerprint:
            return False
        problem = inputs_problem(manifest) if inputs_problem is not None else None
        problem = problem or verify_folder(self.stage_dir(stage), manifest)
        if problem is not None:
            self.invalid[stage] = f"{self.stage_dir(stage)}: {problem}"
        return problem is None

    def parts(self, stage: str, rejects: bool = False) -> list[Where]:
        """The stage's parts that its manifest names (a file it does not name is not read)."""
        manifest = self.manifest(stage)
        return [] if manifest is None else named_parts(self.stage_dir(stage), manifest, rejects)

    def read(self, stage: str, rejects: bool = False, columns: list[str] | None = None) -> pa.Table:
        """The stage's table (or its rejects), after checking its parts against the manifest.
        On an object store a stage republished while it was read (its old attempt deleted)
        is read again from the new manifest."""
        folder = self.stage_dir(stage)
        for tries_left in reversed(range(3 if self.remote else 1)):
            manifest = self.manifest(stage)
            if manifest is None:
                raise ArtifactError(f"{folder}: no {'rejects ' if rejects else ''}artifact "
                                    "(has the stage run?)")
            problem = verify_folder(folder, manifest)
            if problem is not None:
                if tries_left and self.manifest(stage) != manifest:
                    continue
                raise ArtifactError(f"{folder}: {problem}; rerun the command to recompute "
                                    "the stage")
            paths = named_parts(folder, manifest, rejects)
            if not paths:
                raise ArtifactError(f"{folder}: the stage wrote no rejects" if rejects else
                                    f"{folder}: no artifact (has the stage run?)")
            try:
                return pa.concat_tables([read_part(p, columns) for p in paths])
            except FileNotFoundError:
                if not tries_left:
                    raise
        raise AssertionError("unreachable")

    def stage_writer(self, stage: str) -> StageWriter:
        """A writer that takes the stage's rows batch by batch (see `StageWriter`)."""
        return StageWriter(self, stage)

    def write_stage(self, stage: str, table: pa.Table, manifest: dict[str, Any],
                    rejects: pa.Table | None = None,
                    extra_files: dict[str, str] | None = None) -> Where:
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

    def collect_orphans(self) -> list[Where]:
        """Delete the temporary and stale folders (object stores: the attempts no manifest
        names), in this run and in the cache, whose writer is gone (same host, PID not
        alive; on an object store also any older than `ORPHAN_AGE_S`); returns them."""
        places = [self.root] + ([p for p in self.cache_root.iterdir() if p.is_dir()]
                                if self.cache_root.is_dir() else [])
        if isinstance(self.root, RemotePath):
            removed: list[Where] = []
            for place in places:
                for folder in place.iterdir():
                    if folder.is_dir() and not folder.name.startswith("."):
                        removed += objectstore.collect_attempts(folder, ORPHAN_AGE_S)
            return removed
        removed = []
        for place in places:
            for folder in place.glob(".*"):
                if folder.is_dir() and _orphaned(folder.name):
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        return removed

    # -- cross-run cache -------------------------------------------------------------------

    def _cache_dir(self, stage: str, fingerprint: str) -> Where:
        return self.cache_root / stage / fingerprint

    def save_to_cache(self, stage: str) -> None:
        """Copy a verified stage into the cache (replacing an entry that no longer verifies)."""
        manifest = self.manifest(stage)
        if manifest is None or verify_folder(self.stage_dir(stage), manifest) is not None:
            return
        target = self._cache_dir(stage, manifest["fingerprint"])
        if isinstance(target, RemotePath):
            if not _intact(target):
                objectstore.publish(target, objectstore.copy_named(
                    self.stage_dir(stage), manifest, target))  # type: ignore[arg-type]
            return
        if target.exists():
            if _intact(target):
                return
            self._drop(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{_temp_suffix('tmp')}")
        _copy_tree(self.stage_dir(stage), tmp)  # type: ignore[arg-type]
        try:
            tmp.rename(target)
        except OSError:  # another run cached it first
            shutil.rmtree(tmp, ignore_errors=True)

    def cache_entry(self, stage: str, fingerprint: str) -> Where | None:
        """The cache folder holding this stage and fingerprint, when it is there and intact."""
        folder = self._cache_dir(stage, fingerprint)
        return folder if _intact(folder) else None

    def _drop(self, folder: Where) -> None:
        if isinstance(folder, RemotePath):
            objectstore.drop(folder)
            return
        drop_folder(folder)

    def restore_from_cache(self, stage: str, fingerprint: str,
                           inputs_problem: Callable[[dict[str, Any]], str | None] | None = None,
                           ) -> bool:
        """Copy a cached stage into this run; True when the cache had it intact. An entry
        that no longer matches its manifest, or whose recorded inputs `inputs_problem`
        refuses (made from other upstream bytes than this run's), is dropped (and noted in
        `invalid`): the stage is computed again and cached in its place."""
        source = self._cache_dir(stage, fingerprint)
        try:
            manifest = _read_manifest(source)
        except ArtifactError as exc:
            self.invalid[stage] = str(exc)
            self._drop(source)
            return False
        if manifest is None:
            return False
        problem = inputs_problem(manifest) if inputs_problem is not None else None
        if problem is not None or (problem := verify_folder(source, manifest)) is not None:
            self.invalid[stage] = f"cache entry {source}: {problem}"
            self._drop(source)
            return False
        if not isinstance(source, RemotePath):
            mark_used(source)
        manifest["cache"] = {"hit": True, "from_run": manifest.get("run_id")}
        manifest["run_id"] = self.run_id
        if stage in self.invalid:  # this run's own copy had changed: say why it was replaced
            manifest["restored_because"] = self.invalid[stage]
        if isinstance(source, RemotePath):
            final = self.stage_dir(stage)
            copied = objectstore.copy_named(source, manifest, final)  # type: ignore[arg-type]
            if verify_folder(final, copied) is not None:  # changed while it was copied
                (final / ATTEMPTS / copied["attempt"]).remove_tree()
                return False
            objectstore.publish(final, copied)  # type: ignore[arg-type]
            return True
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{stage}.{_temp_suffix('tmp')}"
        _copy_tree(source, tmp)
        (tmp / MANIFEST).unlink()
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        if verify_folder(tmp, manifest) is not None:  # changed while it was copied
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        publish_folder(tmp, self.stage_dir(stage))  # type: ignore[arg-type]
        return True


def read_part(path: Where, columns: list[str] | None = None) -> pa.Table:
    """One Parquet part, local or in an object store (packed vectors unpacked:
    `vector_storage`)."""
    where, filesystem = arrow_path(path)
    return unpack_table(pq.read_table(where, columns=columns, filesystem=filesystem))


def part_file(path: Where) -> PartFile:
    """One Parquet part opened for its footer or for reading batch by batch, local or in an
    object store (its reads unpack packed vectors: `vector_storage`)."""
    where, filesystem = arrow_path(path)
    return PartFile(where, filesystem=filesystem)
