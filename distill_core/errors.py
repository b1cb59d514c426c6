"""Errors a user can act on: each names what to fix (file, row, field, key).

`user_error` turns the failures no code change fixes (a full disk, a read-only
or unwritable runs folder, a damaged manifest, an unreachable network) into
one of these, so every entry point reports them the same way: one line that
names the thing and what to do. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import json
import os
import traceback
from pathlib import Path
from types import TracebackType


class TextDistillError(Exception):
    """Base class for user-facing errors; the CLI prints these without a traceback."""


class IngestError(TextDistillError):
    """A data file cannot be read as configured (missing file or column, bad format)."""


class ConfigError(TextDistillError):
    """A run configuration is invalid."""


class DataSourceUnavailable(TextDistillError):
    """A dataset or model hub cannot be reached and no local copy was configured."""


class ClusterUnavailable(TextDistillError):
    """The configured Ray cluster does not answer."""


class ModelError(TextDistillError):
    """A model's files load but do not behave as that model (a tokenizer that garbles text)."""


class ArtifactError(TextDistillError):
    """A run folder or artifact is missing or inconsistent."""


class StorageError(ArtifactError):
    """The runs folder cannot be written: disk full, read-only, not a folder, no permission."""


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_READ_ONLY = {errno.EROFS}
_NO_PERMISSION = {errno.EACCES, errno.EPERM}
_BAD_PATH = {errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}
_WRITABLE = "pass --runs-dir DIR to a folder you can write"


def storage_error(exc: OSError, where: str | Path | None = None) -> StorageError | None:
    """The one-line error for an OSError of the file system, or None when it is not one."""
    target = exc.filename or where or "the runs folder"
    if exc.errno in _DISK_FULL or "No space left on device" in str(exc):
        return StorageError(f"no space left on the disk holding {target}: free some space "
                            "there or pass --runs-dir DIR on another disk, then rerun (finished "
                            "stages are kept)")
    if exc.errno in _READ_ONLY or "Read-only file system" in str(exc):
        return StorageError(f"cannot write {target}: its file system is read-only; "
                            f"{_WRITABLE}")
    if exc.errno in _NO_PERMISSION:
        return StorageError(f"permission denied on {target}: give this user access to it "
                            f"(write access for a runs folder), or {_WRITABLE}")
    if exc.errno in _BAD_PATH:
        return StorageError(f"cannot use {target}: {exc.strerror or exc}; check --runs-dir "
                            "(a folder) and run.name")
    return None


def _parses_as_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def damaged_json_file(tb: TracebackType | None) -> Path | None:
    """The JSON file (a path, or a folder's manifest.json) named by a local variable of the
    failing frames that does not parse, innermost frame first."""
    for frame, _ in reversed(list(traceback.walk_tb(tb))):
        for value in list(frame.f_locals.values()):
            if isinstance(value, str) and (len(value) > 4096 or "\n" in value):
                continue
            if not isinstance(value, str | os.PathLike):
                continue
            try:
                path = Path(value)
                for candidate in (path, path / "manifest.json"):
                    if (candidate.suffix == ".json" and candidate.is_file()
                            and not _parses_as_json(candidate)):
                        return candidate
            except (OSError, ValueError, TypeError):
                continue
    return None


def prefect_api_unreachable(exc: BaseException) -> str | None:
    """The API address when `exc` says the Prefect server did not answer (Prefect's
    RuntimeError "Failed to reach API at URL", or httpx's ConnectError on the way), else None.
    Matched by message and type name: this module imports neither library."""
    for error in (exc, exc.__cause__, exc.__context__):
        if error is None:
            continue
        text = str(error)
        if isinstance(error, RuntimeError) and text.startswith("Failed to reach API at "):
            return text.removeprefix("Failed to reach API at ").strip()
        if type(error).__module__.startswith("httpx") and type(error).__name__ in (
                "ConnectError", "ConnectTimeout"):
            return os.environ.get("PREFECT_API_URL") or "PREFECT_API_URL"
    return None


def user_error(exc: BaseException, where: str | Path | None = None) -> TextDistillError | None:
    """The user-facing error for an expected failure, or None for a bug.

    `where` names the folder being written when the OS error does not say which file.
    """
    if isinstance(exc, TextDistillError):
        return exc
    if isinstance(exc, OSError) and (found := storage_error(exc, where)) is not None:
        return found
    if isinstance(exc, ConnectionError):
        return DataSourceUnavailable(f"network or cluster unreachable ({exc}): check the "
                                     "address (compute.ray_address, PREFECT_API_URL) and the "
                                     "connection, then rerun")
    if (unreached := prefect_api_unreachable(exc)) is not None:
        return DataSourceUnavailable(f"the Prefect server at {unreached} does not answer: "
                                     "start it, fix PREFECT_API_URL, or unset it for a "
                                     "temporary local server, then rerun")
    if isinstance(exc, ValueError) and (path := damaged_json_file(exc.__traceback__)):
        detail = (f"{exc.msg}, line {exc.lineno}" if isinstance(exc, json.JSONDecodeError)
                  else type(exc).__name__)
        if path.name == "manifest.json":
            return ArtifactError(f"{path}: not valid JSON ({detail}); the stage's record is "
                                 f"damaged: delete the folder {path.parent} to recompute it")
        return ArtifactError(f"{path}: not valid JSON ({detail}); the file is damaged: delete "
                             "or restore it, then rerun")
    return None
