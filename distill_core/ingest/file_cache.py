"""Per-file ingest results kept across runs, so a rerun over a grown folder parses only new files.

A source that is a folder or a glob of files (a nightly export that gains a file a day) is
ingested file by file in name order. A file's corpus rows and rejects depend on its bytes,
on the source's settings (columns, label map, known labels, `max_chars`), on its path (the
`source` column) and, through training-split deduplication, on every file read before it.
So an entry is keyed by the settings and the chain of (path, sha256) of the file and all
files before it in the source: a file that changed, or a file inserted before it, changes
the key of it and of every later file, which are then parsed again.

Layout: `<runs>/.cache/ingest-files/<key>/` holding `corpus.parquet` (the file's corpus
rows as ingest wrote them), `rejects.parquet` and `entry.json` (the two files' bytes and
sha256, and the builder's counts for the file). An entry is written under a temporary name
and renamed into place whole, `entry.json` last inside it. A reader uses an entry only
after checking both files against `entry.json` (size, then sha256 of the bytes read now);
an entry that does not verify is removed, its file is parsed again, and the reason is
returned for the stage manifest: never reused silently.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distill_core.artifacts.cache_use import mark_used
from distill_core.hashing import stable_hash, stream_sha256

FORMAT = 1  # bump when what an entry holds or how ingest makes rows changes
FOLDER = "ingest-files"
ENTRY = "entry.json"
CORPUS = "corpus.parquet"
REJECTS = "rejects.parquet"


def _sha256(path: Path) -> str:
    """sha256 of the bytes on disk now (no memo: an entry is checked as it is read)."""
    with open(path, "rb") as handle:
        return stream_sha256(handle)


@dataclass
class Entry:
    """One verified cached file: its tables' paths and the builder counts it recorded."""

    folder: Path
    meta: dict[str, Any]

    @property
    def corpus(self) -> Path:
        return self.folder / CORPUS

    @property
    def rejects(self) -> Path:
        return self.folder / REJECTS


@dataclass
class FileCache:
    """Per-file ingest entries under `root` (`<runs>/.cache`)."""

    root: Path
    dropped: list[str] = field(default_factory=list)  # entries that failed to verify, and why

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    @staticmethod
    def key(settings: dict[str, Any], chain: list[tuple[str, str]]) -> str:
        """The entry key of the last file of `chain` ((path, sha256) of it and every file
        before it in the source), read with `settings` (split, columns, labels, limits)."""
        return stable_hash({"format": FORMAT, "settings": settings,
                            "chain": [list(link) for link in chain]})

    def load(self, key: str) -> Entry | None:
        """The verified entry `key`, or None (absent, or dropped because it did not verify)."""
        folder = self.folder / key
        sidecar = folder / ENTRY
        if not sidecar.is_file():
            return None
        try:
            record = json.loads(sidecar.read_text())
            for name in (CORPUS, REJECTS):
                expected = record["files"][name]
                path = folder / name
                if not path.is_file():
                    raise ValueError(f"{name} is missing")
                if path.stat().st_size != expected["bytes"]:
                    raise ValueError(f"{name} has {path.stat().st_size} bytes, the entry "
                                     f"recorded {expected['bytes']}")
                if _sha256(path) != expected["sha256"]:
                    raise ValueError(f"{name} does not match the sha256 the entry recorded")
            if record.get("key") != key:
                raise ValueError("the entry records another key")
            meta = record["meta"]
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            self.dropped.append(f"{key[:12]}: {exc!r}" if isinstance(exc, KeyError)
                                else f"{key[:12]}: {exc}")
            shutil.rmtree(folder, ignore_errors=True)
            return None
        mark_used(folder)
        return Entry(folder, meta)

    def writer(self, key: str, corpus_schema: pa.Schema, rejects_schema: pa.Schema
               ) -> EntryWriter:
        return EntryWriter(self.folder, key, corpus_schema, rejects_schema)


class EntryWriter:
    """Writes one file's corpus rows and rejects as they are made; `commit` publishes them."""

    def __init__(self, folder: Path, key: str, corpus_schema: pa.Schema,
                 rejects_schema: pa.Schema) -> None:
        self.target = folder / key
        self.key = key
        self.tmp = folder / f".{key}.tmp-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir(parents=True)
        self._corpus = pq.ParquetWriter(self.tmp / CORPUS, corpus_schema, compression="zstd")
        self._rejects = pq.ParquetWriter(self.tmp / REJECTS, rejects_schema, compression="zstd")

    def write(self, table: pa.Table, rejects: bool = False) -> None:
        (self._rejects if rejects else self._corpus).write_table(table)

    def commit(self, meta: dict[str, Any]) -> None:
        """Close the tables, record them and move the entry into place (a concurrent writer
        that got there first wins; both wrote the same rows)."""
        self._corpus.close()
        self._rejects.close()
        files = {name: {"bytes": (self.tmp / name).stat().st_size,
                        "sha256": _sha256(self.tmp / name)} for name in (CORPUS, REJECTS)}
        (self.tmp / ENTRY).write_text(json.dumps({"key": self.key, "format": FORMAT,
                                                  "files": files, "meta": meta}))
        try:
            os.rename(self.tmp, self.target)
        except OSError:  # already there (another run, or a kept entry): keep that one
            shutil.rmtree(self.tmp, ignore_errors=True)

    def abort(self) -> None:
        for handle in (self._corpus, self._rejects):
            try:
                handle.close()
            except Exception:  # noqa: BLE001 - closing a half-written file while failing
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)
