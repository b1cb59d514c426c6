"""Run the `textdistill` CLI with a file-system fault injected under one folder.

    python tests/cli/inject.py MODE FOLDER CLI-ARGS...

MODE: `enospc` (every Parquet write or writer opened under FOLDER: no space left on
device, as pyarrow raises it, without a file name), `erofs` / `eacces` (every write,
rename, link or delete under FOLDER: a read-only file system / permission denied, as the
OS raises them; reads work), `bug` (a Parquet write under FOLDER raises a RuntimeError:
an unexpected failure).
Tests run as root, which ignores permission bits, and cannot mount a small or read-only
file system, so the OS errors are injected at the calls that write.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import sys
from pathlib import Path

MODE, FOLDER, ARGS = sys.argv[1], Path(sys.argv[2]).resolve(), sys.argv[3:]
ERRNO = {"erofs": errno.EROFS, "eacces": errno.EACCES}


def _inside(path: object) -> bool:
    try:
        return Path(os.fsdecode(path)).resolve().is_relative_to(FOLDER)
    except (TypeError, ValueError, OSError):
        return False


def _refuse(path: object) -> None:
    code = ERRNO[MODE]
    raise OSError(code, os.strerror(code), os.fsdecode(path))


def _guard(function, *path_args: int):
    def guarded(*args, **kwargs):
        for index in path_args:
            if index < len(args) and _inside(args[index]):
                _refuse(args[index])
        return function(*args, **kwargs)
    return guarded


def _guard_open(function):
    def guarded(file, mode="r", *args, **kwargs):
        if isinstance(file, str | bytes | os.PathLike) and any(c in mode for c in "wax+") \
                and _inside(file):
            _refuse(file)
        return function(file, mode, *args, **kwargs)
    return guarded


import pyarrow.parquet as pq  # noqa: E402

_write_table = pq.write_table


def _parquet_fault(where: object) -> None:
    if _inside(where):
        if MODE == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        if MODE == "bug":
            raise RuntimeError("injected bug")
        _refuse(where)


def _write_table_fault(table, where, *args, **kwargs):
    _parquet_fault(where)
    return _write_table(table, where, *args, **kwargs)


class _FaultyParquetWriter(pq.ParquetWriter):
    """The store's streaming writer opens its parts through `pq.ParquetWriter`."""

    def __init__(self, where, *args, **kwargs):
        _parquet_fault(where)
        super().__init__(where, *args, **kwargs)


pq.write_table = _write_table_fault
pq.ParquetWriter = _FaultyParquetWriter
if MODE in ERRNO:
    builtins.open = io.open = _guard_open(io.open)
    _os_open = os.open

    def _os_open_fault(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC) and _inside(path):
            _refuse(path)
        return _os_open(path, flags, *args, **kwargs)

    os.open = _os_open_fault
    for name in ("mkdir", "rmdir", "remove", "unlink", "utime", "chmod"):
        setattr(os, name, _guard(getattr(os, name), 0))
    for name in ("rename", "replace", "link", "symlink"):
        setattr(os, name, _guard(getattr(os, name), 0, 1))

from flows.cli import app  # noqa: E402

app(args=ARGS, prog_name="textdistill")
