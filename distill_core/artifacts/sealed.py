"""Sealed folders: something written once and reused by later runs (a dequantised model
copy, a trained generator, a distilled static encoder, a fine-tuned teacher) is reused only
when its files are still what was written.

`seal(folder, identity)` records every file's size and sha256, and what the folder was made
from (`identity`: a source file's hash, the settings), in `SEAL` beside them, written last
and atomically. `seal_problem(folder, identity)` says, in words, why a folder may not be
reused: no seal (an older version made it, or its writer died before sealing), another
identity, a file missing, resized or changed. Files added after sealing are ignored; files
the seal names must match. Hashes are memoised per process (`file_sha256`), so checking a
model folder costs one read of its bytes per process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from distill_core.artifacts.parts import file_sha256, temp_suffix

SEAL = "textdistill-seal.json"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != SEAL
                  and not p.name.startswith(f".{SEAL}"))


def seal(folder: Path, identity: dict[str, Any] | None = None) -> None:
    """Record `folder`'s files (size, sha256) and `identity` in its seal."""
    records = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size,
                                                   "sha256": file_sha256(p)}
               for p in _files(folder)}
    tmp = folder / f".{SEAL}.{temp_suffix('tmp')}"
    tmp.write_text(json.dumps({"identity": identity or {}, "files": records}, indent=2,
                              sort_keys=True), encoding="utf-8")
    os.replace(tmp, folder / SEAL)


def seal_problem(folder: Path, identity: dict[str, Any] | None = None) -> str | None:
    """None when `folder` is sealed with `identity` and every file it names is unchanged;
    else what is wrong."""
    path = folder / SEAL
    if not path.is_file():
        return f"{folder} has no seal ({SEAL}): an older version made it, or its writer " \
               "stopped before finishing"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        files, sealed_identity = record["files"], record["identity"]
        if not isinstance(files, dict):
            raise TypeError("files")
    except (ValueError, KeyError, TypeError):
        return f"{path} is damaged"
    if sealed_identity != (identity or {}):
        return f"{folder} was made from {sealed_identity}, not {identity or {}}"
    for name, expected in sorted(files.items()):
        file = folder / name
        if not file.is_file():
            return f"{file} is missing"
        if file.stat().st_size != expected.get("bytes"):
            return f"{file} has {file.stat().st_size} bytes, {expected.get('bytes')} were written"
        if file_sha256(file) != expected.get("sha256"):
            return f"{file} changed since it was written (sha256 differs)"
    return None

