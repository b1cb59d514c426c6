"""Which files one file source reads: a file, a folder of files, or a glob (`daily/*.csv`).

A nightly export that adds a file a day is one source: its files are read in sorted name
order as one split, and each file's sha256 is part of the source's identity, so a folder
that gained a file is re-ingested (and per-row caches downstream still find the old rows:
their ids depend on their content only). A path that exists is that file or folder; one
that does not and holds `*`, `?` or `[` is a glob. A folder whose name announces a data
format (`train.csv/`) is a mistake, not a folder source: it is named as a directory. A
folder's hidden files (`.DS_Store`, partial downloads) are not read; every other entry is,
so a stray file is an error naming it, never skipped silently.
"""

from __future__ import annotations

import glob
from pathlib import Path

from distill_core.errors import IngestError
from distill_core.ingest.sources import FileSource, format_of

_GLOB_CHARS = frozenset("*?[")


def is_many(path: Path) -> bool:
    """True when `path` names several files: a glob, or a folder without a format suffix."""
    if path.is_dir():
        return format_of(path) is None
    return not path.exists() and not path.is_symlink() and any(c in _GLOB_CHARS
                                                                 for c in str(path))


def expand(path: Path) -> list[Path]:
    """The files `path` stands for, in sorted name order (itself when it is one file)."""
    if not is_many(path):
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        if not found:
            raise IngestError(f"{path}: the folder holds no data files; put the split's files "
                              "in it or point `path` at a file")
        return found
    found = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
    if not found:
        raise IngestError(f"{path}: no file matches this pattern; check `path` and the data "
                          "folder it is relative to")
    return found


def file_source_for(source: FileSource, path: Path, many: bool) -> FileSource:
    """The source's options for one of its files; a folder's files name their own format."""
    if not many or source.format is not None:
        return source
    fmt = format_of(path)
    if fmt is None:
        raise IngestError(f"{path}: cannot infer the format from the suffix (a file of the "
                          f"source {source.path}); set `format` on the source, or move the "
                          "file out of the folder")
    return source.model_copy(update={"format": fmt})
