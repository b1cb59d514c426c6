"""What a stage's manifest records of its parts, and checking them: verify on read.

A manifest names every file of its stage with its size and sha256 (`parts`); readers trust
only the parts it names and check them first. On an object store the parts sit under the
writer's attempt prefix (`<stage>/attempts/<attempt>/`, named by the manifest's `attempt`);
on a local disk they sit in the stage folder itself. Temporary folders and attempts carry
their writer's host and PID (`temp_suffix`), so a later writer can tell whose they were.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from distill_core.artifacts.location import Where
from distill_core.errors import ArtifactError
from distill_core.hashing import stable_hash, stream_sha256

MANIFEST = "manifest.json"
DATA = "data"  # the stage's rows: `<stage>/data/part-*.parquet`
REJECTS = "rejects"  # its dropped rows: `<stage>/rejects/part-*.parquet`
ATTEMPTS = "attempts"  # object stores: `<stage>/attempts/<attempt>/data/part-*.parquet`

HOST = socket.gethostname().replace("-", "_")[:32]
# (where, inode, mtime_ns, size) -> sha256. A local file is known by its device and inode,
# not its path, so a part hashed as it was written is not hashed again after the stage's
# folder is renamed into place (a rename keeps the inode and mtime; a rewrite changes the
# mtime or size). An object store has no inode: there `where` is the path; its parts are
# never rewritten under the same key (each writer has its own attempt prefix), and a rewrite
# changes the object's mtime or size.
_SHA_MEMO: dict[tuple[str, int, int, int], str] = {}


def _memo_key(path: Where) -> tuple[str, int, int, int]:
    info = path.stat()
    where = f"dev:{info.st_dev}" if isinstance(path, Path) else str(path)
    return (where, info.st_ino, info.st_mtime_ns, info.st_size)


def temp_suffix(kind: str) -> str:
    """`<kind>-<pid>-<random>-<host>`: whose temporary folder or attempt, for collection."""
    return f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}-{HOST}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writer_gone(name: str) -> bool:
    """A temporary folder, stale folder or attempt named by `temp_suffix` on this host whose
    writing process is gone."""
    for kind in (".tmp-", ".stale-", "attempt-"):
        if kind in name:
            fields = name.split(kind, 1)[1].split("-")
            break
    else:
        return False
    if len(fields) >= 3 and fields[0].isdigit() and fields[2] == HOST:
        return not alive(int(fields[0]))
    return False


def file_sha256(path: Where) -> str:
    """sha256 of one file, remembered by (device and inode, or an object's path; mtime; size)
    within the process."""
    key = _memo_key(path)
    if key not in _SHA_MEMO:
        with path.open("rb") as handle:
            _SHA_MEMO[key] = stream_sha256(handle)
    return _SHA_MEMO[key]


def remember_sha256(path: Where, digest: str) -> None:
    """Record the sha256 of a file whose bytes the caller has just hashed (a copy made while
    hashing it), so checking it later in this process does not read it again."""
    _SHA_MEMO[_memo_key(path)] = digest


def part_records(folder: Where, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What a manifest records of each part: its size and sha256."""
    return {name: {"bytes": (folder / name).stat().st_size,
                   "sha256": file_sha256(folder / name)} for name in names}


def parts_base(folder: Where, manifest: dict[str, Any]) -> Where:
    """The folder the manifest's part names are relative to: the stage folder, or (object
    stores) the attempt prefix the manifest names."""
    attempt = manifest.get("attempt")
    return folder / ATTEMPTS / attempt if attempt else folder


def named_parts(folder: Where, manifest: dict[str, Any], rejects: bool = False) -> list[Where]:
    """The Parquet parts `manifest` names in `folder`: the rows (`data/`) or the rejects."""
    prefix = f"{REJECTS if rejects else DATA}/"
    base = parts_base(folder, manifest)
    return [base / n for n in sorted(manifest.get("parts") or {})
            if n.startswith(prefix) and n.endswith(".parquet")]


def verify_folder(folder: Where, manifest: dict[str, Any]) -> str | None:
    """None when every part the manifest names is there with its recorded size and sha256;
    else what is wrong, in words."""
    records = manifest.get("parts")
    if not isinstance(records, dict):
        return "its manifest records no part checksums (written by an older version)"
    if not any(name.startswith(f"{DATA}/") for name in records):
        return f"its parts are not in {DATA}/ (the layout of an older version)"
    base = parts_base(folder, manifest)
    for name, record in sorted(records.items()):
        path = base / name
        try:
            if isinstance(path, Path) and not path.is_file():
                raise FileNotFoundError(path)
            size = path.stat().st_size
        except FileNotFoundError:
            return f"part {name} is missing"
        if size != record.get("bytes"):
            return f"part {name} has {size} bytes, the manifest recorded {record.get('bytes')}"
        if file_sha256(path) != record.get("sha256"):
            return f"part {name} changed since it was written (sha256 differs)"
    return None


def _manifest_bytes(path: Where) -> bytes | None:
    if isinstance(path, Path):
        return path.read_bytes() if path.is_file() else None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


# What every stage manifest records (the audit, the report and verification read them).
REQUIRED_KEYS = ("parts",)


def read_manifest(folder: Where) -> dict[str, Any] | None:
    """A folder's manifest; None when there is none. A manifest that is not JSON is an error
    naming the file and what to do."""
    path = folder / MANIFEST
    raw = _manifest_bytes(path)
    if raw is None:
        return None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError too
        raise ArtifactError(f"{path}: not a readable manifest ({exc}); delete the folder "
                            f"{folder} so the next run recomputes it") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: not a manifest (expected a JSON object); delete the "
                            f"folder {folder} so the next run recomputes it")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise ArtifactError(f"{path}: not a stage manifest (no {', '.join(missing)}); delete "
                            f"the folder {folder} so the next run recomputes it")
    return manifest


def intact(folder: Where) -> bool:
    try:
        manifest = read_manifest(folder)
    except ArtifactError:
        return False
    return manifest is not None and verify_folder(folder, manifest) is None


def made_from(manifest: dict[str, Any]) -> tuple[Any, str]:
    """What a stage's output follows from: its fingerprint (how it was made) and the inputs
    its manifest records (the upstream bytes it was made from). Two copies with equal keys
    are interchangeable; an equal fingerprint alone is not enough (a recomputed upstream may
    hold other bytes)."""
    return manifest.get("fingerprint"), stable_hash(manifest.get("inputs"))


def made_from_of(folder: Where) -> tuple[Any, str] | None:
    try:
        manifest = read_manifest(folder)
    except (OSError, ArtifactError):
        return None
    return None if manifest is None else made_from(manifest)
