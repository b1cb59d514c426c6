"""Publishing a stage on an object store, where there is no rename.

A writer puts its parts under an attempt prefix of its own
(`<stage>/attempts/<kind>-<pid>-<random>-<host>/data/part-*.parquet`), then writes
`<stage>/manifest.json` last, in one upload, naming that attempt and each part's size and
sha256. Readers read only what the manifest names, so a writer killed before its manifest
leaves nothing a reader sees, and two writers of one stage each leave a complete manifest:
whichever lands last is the stage. What no manifest names any more is garbage: the attempt a
new manifest replaces is deleted by its writer, and `collect_attempts` deletes attempts
whose writer is gone (this host, PID not alive) or that are older than `ORPHAN_AGE_S`.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pyarrow as pa

from distill_core.artifacts.location import RemotePath
from distill_core.artifacts.parts import (
    ATTEMPTS,
    MANIFEST,
    made_from,
    parts_base,
    read_manifest,
    temp_suffix,
    verify_folder,
    writer_gone,
)
from distill_core.errors import ArtifactError

ORPHAN_AGE_S = 24 * 3600  # an attempt of another host is collected after a day


class HashingSink:
    """A binary sink for pyarrow's writers that uploads to an object and keeps the size and
    sha256 of what went through, so a part's record needs no second download."""

    def __init__(self, path: RemotePath) -> None:
        self._stream = path.fs.open_output_stream(path.path)
        self.digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._stream.write(view)
        self.digest.update(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        """Nothing to do: the object appears when the sink closes."""

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            self.closed = True

    def arrow_file(self) -> pa.PythonFile:
        return pa.PythonFile(self, mode="w")

    def record(self) -> dict[str, Any]:
        return {"bytes": self.size, "sha256": self.digest.hexdigest()}


def new_attempt(stage_folder: RemotePath, kind: str = "attempt") -> tuple[str, RemotePath]:
    """A fresh attempt name and its prefix under the stage folder."""
    name = temp_suffix(kind)
    return name, stage_folder / ATTEMPTS / name


def _current(folder: RemotePath) -> dict[str, Any] | None:
    try:
        return read_manifest(folder)
    except ArtifactError:
        return None


def publish(final: RemotePath, manifest: dict[str, Any]) -> bool:
    """Make `manifest` (naming its `attempt`) the stage's, by writing it last; False when the
    same fingerprint from the same inputs was already there intact (a concurrent writer of
    the same config won: its copy stays and ours is deleted). The attempt a replaced
    manifest named is deleted."""
    attempt = manifest["attempt"]
    current = _current(final)
    if (current is not None and current.get("attempt") != attempt
            and made_from(current) == made_from(manifest)
            and verify_folder(final, current) is None):
        (final / ATTEMPTS / attempt).remove_tree()
        return False
    (final / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    replaced = (current or {}).get("attempt")
    if replaced and replaced != attempt:
        (final / ATTEMPTS / replaced).remove_tree()
    return True


def copy_named(source: RemotePath, manifest: dict[str, Any], target: RemotePath,
               kind: str = "attempt") -> dict[str, Any]:
    """Copy the files `manifest` names from `source` into a new attempt of `target`; the
    manifest to publish there (same records, the new attempt). Nothing is visible until it
    is published."""
    attempt, folder = new_attempt(target, kind)
    base = parts_base(source, manifest)
    for name in sorted(manifest.get("parts") or {}):
        (base / name).copy_to(folder / name)
    return {**manifest, "attempt": attempt}


def drop(folder: RemotePath) -> None:
    """Remove a stage or cache entry: its manifest first (it is gone for readers at once),
    then everything under it."""
    (folder / MANIFEST).unlink(missing_ok=True)
    folder.remove_tree()


def collect_attempts(folder: RemotePath, max_age_s: float = ORPHAN_AGE_S) -> list[RemotePath]:
    """Delete the attempts under a stage or cache folder that its manifest does not name and
    whose writer is gone or which are older than `max_age_s`; returns what was removed."""
    attempts = [a for a in (folder / ATTEMPTS).iterdir() if a.is_dir()]
    if not attempts:
        return []
    named = (_current(folder) or {}).get("attempt")
    removed = []
    now = time.time()
    for attempt in attempts:
        if attempt.name == named:
            continue
        if not writer_gone(attempt.name):
            stamps = [info.st_mtime_ns for _, info in attempt.files()]
            if stamps and now - max(stamps) / 1e9 < max_age_s:
                continue
        attempt.remove_tree()
        removed.append(attempt)
    return removed
