"""Per-part signals cache shared by runs: a rerun over a grown corpus copies the embeddings of
the ingest parts it has seen instead of looking up and rewriting every vector.

A stage's parts hold a fixed number of rows in row groups of fixed sizes (`StageWriter`), so
an ingest part's bytes, and its sha256, follow from its rows alone. The signals rows of one
ingest part (its `example_id` and `split`, the embedding of each text) are a function of
that part and of the signals settings, so the signals part written for it is kept under
`<runs>/.cache/signals-parts/<key>.parquet`, `key` = hash of (the settings, whether the
corpus has pair texts, the ingest part's sha256). A nightly run whose corpus grew by a file
at the end finds every part but the last ones (the tail of the training rows, then the
evaluation rows) and copies them into its stage, checking their bytes against the entry's
record once copied (`StageWriter.adopt`, `stage_writer.copy_hashed`); only the other
parts are embedded (through the per-text row cache, `row_cache.py`).

Layout: `<key>.parquet` and its sidecar `<key>.json` (`bytes`, `sha256`, `rows`), both
written under temporary names and renamed into place, the sidecar last: a reader trusts only
a part its sidecar names. An entry whose copy does not match its record is removed, its
ingest part is embedded again, and the reason is in the stage manifest.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_core.artifacts.cache_use import mark_used
from distill_core.artifacts.parts import remember_sha256, temp_suffix, writer_gone
from distill_core.artifacts.stage_writer import copy_hashed
from distill_core.hashing import stable_hash

FORMAT = 1  # bump when what an entry holds changes
FOLDER = "signals-parts"


@dataclass
class PartCache:
    """The signals parts of one setting under a runs folder's `.cache`."""

    root: Path
    settings: dict[str, Any]
    pairs: bool
    reused: int = 0  # parts copied from the cache by this object
    saved: int = 0  # parts added to it
    dropped: list[str] = field(default_factory=list)  # entries removed, and why

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    def key(self, ingest_sha256: str) -> str:
        """The entry of the signals rows of the ingest part with this sha256."""
        return stable_hash({"format": FORMAT, "settings": self.settings, "pairs": self.pairs,
                            "ingest_part": ingest_sha256})[:40]

    def entry(self, ingest_sha256: str) -> tuple[Path, dict[str, Any]] | None:
        """(the cached part, its record) when its sidecar is there; the bytes are checked by
        whoever copies them (`StageWriter.adopt`), then `drop` if they do not match."""
        key = self.key(ingest_sha256)
        sidecar = self.folder / f"{key}.json"
        try:
            record = json.loads(sidecar.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.drop(ingest_sha256, f"its sidecar is not readable ({exc})")
            return None
        if not isinstance(record, dict):
            self.drop(ingest_sha256, "its sidecar is not a record (a JSON object)")
            return None
        mark_used(sidecar)
        return self.folder / f"{key}.parquet", record

    def holds(self, ingest_sha256: str) -> bool:
        """Whether an entry's sidecar is there (read-only: for `plan`; a copy checks bytes)."""
        return (self.folder / f"{self.key(ingest_sha256)}.json").is_file()

    def drop(self, ingest_sha256: str, why: str) -> None:
        """Remove an entry that failed its check (sidecar first, so no reader trusts it)."""
        key = self.key(ingest_sha256)
        self.dropped.append(f"{key[:12]}: {why}")
        sidecar = self.folder / f"{key}.json"
        gone = sidecar.with_name(f".{sidecar.name}.{temp_suffix('stale')}")
        try:
            sidecar.rename(gone)
        except FileNotFoundError:
            return
        gone.unlink(missing_ok=True)
        (self.folder / f"{key}.parquet").unlink(missing_ok=True)

    def save(self, ingest_sha256: str, part: Path, rows: int) -> None:
        """Keep a copy of the signals `part` just written for this ingest part (an entry
        already there is kept). The copy's sha256 is the part's, remembered for the stage's
        manifest. Concurrent writers of one entry each rename a whole pair into place."""
        if self.holds(ingest_sha256):
            return
        key = self.key(ingest_sha256)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._collect()
        suffix = temp_suffix("tmp")
        data = self.folder / f".{key}.parquet.{suffix}"
        digest, size = copy_hashed(part, data)
        remember_sha256(part, digest)  # the bytes just read: the manifest need not hash again
        sidecar = self.folder / f".{key}.json.{suffix}"
        sidecar.write_text(json.dumps({"format": FORMAT, "bytes": size, "sha256": digest,
                                       "rows": rows}))
        os.replace(data, self.folder / f"{key}.parquet")
        os.replace(sidecar, self.folder / f"{key}.json")
        self.saved += 1

    def _collect(self) -> None:
        """Remove temporary files whose writer (on this host) has exited."""
        for path in self.folder.glob(".*"):
            if writer_gone(path.name):
                path.unlink(missing_ok=True)

    def account(self) -> dict[str, Any]:
        """The stage manifest's account of the cache."""
        out: dict[str, Any] = {"folder": str(self.folder), "parts_reused": self.reused,
                               "parts_saved": self.saved}
        if self.dropped:
            out["dropped"] = self.dropped
        return out

