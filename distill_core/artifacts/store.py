"""A run folder of stage artifacts: Parquet parts, a rejects table and a manifest per stage.

Layout: `<runs>/<run_id>/<stage>/part-00000.parquet`, `<stage>/rejects/part-*.parquet`,
`<stage>/manifest.json`. A stage is written into a hidden temporary folder and
renamed into place, so a crash never leaves half an artifact and a reader sees
either nothing or the whole stage. A stage whose manifest carries the expected
fingerprint is complete and is skipped on rerun.

Stages whose output does not depend on the run (ingest, signals) are also kept
in `<runs>/.cache/<stage>/<fingerprint>/` (hard links, no copy), so another run
with the same data and model reuses them.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill_core.errors import ArtifactError

MANIFEST = "manifest.json"
REJECTS = "rejects"
ROWS_PER_PART = 200_000


def _write_parts(folder: Path, table: pa.Table) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    chunks = max(1, -(-table.num_rows // ROWS_PER_PART))
    for index in range(chunks):
        name = f"part-{index:05d}.parquet"
        pq.write_table(table.slice(index * ROWS_PER_PART, ROWS_PER_PART), folder / name)
        names.append(name)
    return names


def _link_tree(source: Path, target: Path) -> None:
    """Copy a folder as hard links where the filesystem allows, else as copies."""
    for path in source.rglob("*"):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            shutil.copy2(path, destination)


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
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError):
        return None


def _publish(tmp: Path, final: Path, attempts: int = 5) -> None:
    """Rename a finished temporary folder into place.

    When another process published the same stage with the same fingerprint
    meanwhile (concurrent runs of one config), its copy is identical and stays;
    a copy with another fingerprint is replaced. Readers see a whole stage.
    """
    ours = _fingerprint_of(tmp)
    for _ in range(attempts):
        if final.exists():
            if ours is not None and _fingerprint_of(final) == ours:
                shutil.rmtree(tmp, ignore_errors=True)
                return
            stale = final.with_name(f".{final.name}.stale-{uuid.uuid4().hex[:8]}")
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

    def manifest(self, stage: str) -> dict[str, Any] | None:
        path = self.stage_dir(stage) / MANIFEST
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def stages(self) -> list[str]:
        """Completed stages of this run, in the order they finished."""
        found = [(m["finished_at"], p.name) for p in self.root.iterdir()
                 if p.is_dir() and not p.name.startswith(".")
                 and (m := self.manifest(p.name)) is not None] if self.root.is_dir() else []
        return [name for _, name in sorted(found)]

    def is_complete(self, stage: str, fingerprint: str) -> bool:
        manifest = self.manifest(stage)
        return manifest is not None and manifest.get("fingerprint") == fingerprint

    def parts(self, stage: str, rejects: bool = False) -> list[Path]:
        folder = self.stage_dir(stage) / (REJECTS if rejects else "")
        return sorted(folder.glob("part-*.parquet"))

    def read(self, stage: str, rejects: bool = False, columns: list[str] | None = None) -> pa.Table:
        paths = self.parts(stage, rejects)
        if not paths:
            raise ArtifactError(f"{self.stage_dir(stage)}: no {'rejects ' if rejects else ''}"
                                "artifact (has the stage run?)")
        return pa.concat_tables([pq.read_table(p, columns=columns) for p in paths])

    def write_stage(self, stage: str, table: pa.Table, manifest: dict[str, Any],
                    rejects: pa.Table | None = None,
                    extra_files: dict[str, str] | None = None) -> Path:
        """Write a stage atomically: parts, rejects, extra text files, then the manifest."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_orphans(stage)
        tmp = self.root / f".{stage}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            files = _write_parts(tmp, table)
            if rejects is not None:
                files += [f"{REJECTS}/{n}" for n in _write_parts(tmp / REJECTS, rejects)]
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text, encoding="utf-8")
                files.append(name)
            manifest = {**manifest, "files": files, "run_id": self.run_id}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str),
                                        encoding="utf-8")
            if self.before_publish is not None:
                self.before_publish(stage)
            _publish(tmp, self.stage_dir(stage))
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.stage_dir(stage)

    def _remove_orphans(self, stage: str) -> None:
        """Delete temporary folders of `stage` left by writers that died (killed mid-write)."""
        for folder in self.root.glob(f".{stage}.tmp-*"):
            pid = folder.name.split("-")[1] if folder.name.count("-") >= 2 else ""
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)

    # -- cross-run cache -------------------------------------------------------------------

    def _cache_dir(self, stage: str, fingerprint: str) -> Path:
        return self.cache_root / stage / fingerprint

    def save_to_cache(self, stage: str) -> None:
        manifest = self.manifest(stage)
        if manifest is None:
            return
        target = self._cache_dir(stage, manifest["fingerprint"])
        if target.exists():
            return
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        _link_tree(self.stage_dir(stage), tmp)
        try:
            tmp.rename(target)
        except OSError:  # another run cached it first
            shutil.rmtree(tmp, ignore_errors=True)

    def restore_from_cache(self, stage: str, fingerprint: str) -> bool:
        """Link a cached stage into this run; True when the cache had it."""
        source = self._cache_dir(stage, fingerprint)
        manifest_path = source / MANIFEST
        if not manifest_path.is_file():
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{stage}.tmp-{uuid.uuid4().hex[:12]}"
        _link_tree(source, tmp)
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["cache"] = {"hit": True, "from_run": manifest.get("run_id")}
        manifest["run_id"] = self.run_id
        (tmp / MANIFEST).unlink()
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        _publish(tmp, self.stage_dir(stage))
        return True


def sha256_files(paths: Iterable[Path]) -> str:
    """One sha256 over several files' bytes, in the given order."""
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
