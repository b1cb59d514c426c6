"""Per-text embedding cache shared by runs: a rerun over a grown corpus embeds only new texts.

Layout: `<runs>/.cache/rows/<key>/part-<utc time>-<random>.parquet`, each with a sidecar
`part-....json` that records its rows, vector size, bytes and sha256. `key` hashes every
setting a vector depends on (the signals stage's settings: encoder identity, static model
recipe, max_length, precision, pooling, normalisation), so another encoder or setting gets
another folder and never another model's vectors.

Rows are keyed by `text_hash`, the blake2b-128 of the exact string the encoder reads, not by
`example_id`: an `example_id` hashes text and label, so a relabelled row (a fixed label, a
changed label map) would miss the cache although its vector cannot change; and a pair's two
sides are embedded as separate strings, so each string is one cache row. A vector is
stored as its float32 bytes (little-endian) in a fixed-size binary value: Parquet decodes
that column ~8x faster than a fixed-size list of floats, which carries a level per float.

A run that embeds new texts appends one part: written under a temporary name, renamed into
place, then its sidecar is renamed into place last. Readers trust only parts a sidecar
names and verify each against it (size, sha256) before use; a part that does not match is
dropped (both files removed) and its texts are embedded again, never silently reused.
Concurrent writers write distinct names, so both parts land whole; a text embedded by both
is then in two parts and the oldest part wins, so every reader picks the same vector.

A cache object reads every verified part's keys once (16 bytes, as two 64-bit words, and a
4-byte row number per cached text, sorted), so a lookup is a binary search and reads the
vectors of only the parts that hold a match; a stage that looks up batch after batch keeps
one object, and the parts it appends (or another writer adds: each lookup lists the
folder) join its index. Verifying a part reads its bytes once more (sha256, remembered per
process), and a part is verified again right before its vectors are used. Parts are written
uncompressed: hashes and float vectors do not compress.

Vectors come from batched inference, whose last bits depend on the batch a text shared
(padding and kernel choice; up to ~2e-7 here): a reused vector is bit for bit the one first
computed, which can differ in those bits from embedding the whole corpus again.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distill_core.artifacts.cache_use import mark_used
from distill_core.artifacts.store import file_sha256
from distill_core.errors import ArtifactError
from distill_core.hashing import stable_hash, stream_sha256

FORMAT = 2  # bump when the part layout changes: older parts then sit under another key
# (2: vectors as fixed-size binary, uncompressed; 1 held fixed-size lists of float32)
ROW_GROUP = 65_536  # rows per Parquet row group: the unit a filtered scan holds in memory
ORPHAN_AGE_S = 3600  # a part without its sidecar this old was left by a crashed writer
KEY_TYPE = pa.binary(16)
_HOST = socket.gethostname().replace("-", "_")[:32]

EncodeFn = Callable[[Sequence[str]], np.ndarray]


def text_hash(text: str) -> bytes:
    """The cache key of one string as the encoder reads it (16 bytes)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def text_hashes(texts: Sequence[str]) -> pa.Array:
    return pa.array([text_hash(t) for t in texts], type=KEY_TYPE)


@dataclass
class Lookup:
    """Cached vectors of the asked-for keys, in their order; `found` marks which were there."""

    vectors: np.ndarray | None  # [n, dim] float32 (rows not found are zero); None: none found
    found: np.ndarray  # bool [n]
    parts_read: int = 0


@dataclass
class RowStats:
    """What one cached encode did, for the stage manifest."""

    key: str
    folder: str
    rows_reused: int = 0
    rows_computed: int = 0
    parts_read: int = 0
    part_written: str | None = None  # the last part this account wrote
    parts_written: int = 0
    dropped: list[str] = field(default_factory=list)
    not_saved: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _writer_gone(name: str) -> bool:
    """A `...tmp-<pid>-<random>-<host>` file whose writer (this host) has exited, or any
    such file older than a day."""
    fields = name.rsplit(".tmp-", 1)[-1].split("-")
    if len(fields) >= 3 and fields[0].isdigit() and fields[2] == _HOST:
        try:
            os.kill(int(fields[0]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return False


def _key_words(keys: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """16-byte keys as two uint64 words each (first and last 8 bytes): numpy binary-searches
    numbers 2.6x faster than `S16` byte strings here, and the pair is the key."""
    array = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    array = array.cast(KEY_TYPE)
    words = np.frombuffer(array.buffers()[1], dtype=np.uint64,
                          count=2 * (array.offset + len(array)))[2 * array.offset:]
    return words[0::2].copy(), words[1::2].copy()


def _vectors(column: pa.FixedSizeBinaryArray, dim: int) -> np.ndarray:
    """A part's `embedding` column as a float32 [n, dim] matrix."""
    raw = np.frombuffer(column.buffers()[1], dtype="<f4", count=(column.offset + len(column))
                        * dim)
    return raw[column.offset * dim:].reshape(-1, dim).astype(np.float32, copy=False)


@dataclass
class _PartIndex:
    """One verified part's keys, sorted by (first word, second word), with the row each
    sits in."""

    part: Path
    sidecar: Path
    dim: int
    high: np.ndarray  # uint64, sorted
    low: np.ndarray  # uint64, sorted within each run of equal `high`
    rows: np.ndarray  # int32: the part row of each sorted key (a part holds < 2**31 rows)

    @classmethod
    def of(cls, part: Path, sidecar: Path, dim: int,
           keys: pa.Array | pa.ChunkedArray) -> _PartIndex:
        high, low = _key_words(keys)
        order = np.lexsort((low, high))
        return cls(part, sidecar, dim, high[order], low[order], order.astype(np.int32))

    def match(self, high: np.ndarray, low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which wanted keys are here, the part row of each; rows of misses are junk)."""
        size = len(self.high)
        if size == 0:
            return np.zeros(len(high), dtype=bool), np.zeros(len(high), dtype=np.int64)
        position = np.minimum(np.searchsorted(self.high, high), size - 1)
        same_high = self.high[position] == high
        hits = same_high & (self.low[position] == low)
        # Keys sharing a first word (about one pair in 2**64): the match may sit further on.
        for i in np.flatnonzero(same_high & ~hits):
            end = int(np.searchsorted(self.high, high[i], side="right"))
            at = int(position[i]) + int(np.searchsorted(self.low[position[i]:end], low[i]))
            if at < end and self.low[at] == low[i]:
                position[i], hits[i] = at, True
        return hits, self.rows[position]


class RowCache:
    """The per-text vector cache of one encoder setting under a runs folder's `.cache`."""

    def __init__(self, cache_root: str | Path, settings: Any) -> None:
        self.settings = settings
        self.key = stable_hash({"format": FORMAT, "settings": settings})[:32]
        self.folder = Path(cache_root) / "rows" / self.key
        self.dropped: list[str] = []  # damaged parts removed by this object, and why
        self._index: list[_PartIndex] | None = None  # the parts' keys, read on first lookup

    # -- reading ---------------------------------------------------------------------------

    def _sidecars(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.json")) if self.folder.is_dir() else []

    def _drop(self, sidecar: Path, why: str) -> None:
        """Remove a part that failed verification (sidecar first, so no reader trusts it)."""
        self.dropped.append(f"{sidecar.with_suffix('.parquet').name}: {why}")
        gone = sidecar.with_name(f".{sidecar.name}.dropped-{uuid.uuid4().hex[:8]}")
        try:
            sidecar.rename(gone)
        except FileNotFoundError:  # another reader dropped it first
            return
        for path in (sidecar.with_suffix(".parquet"), gone):
            path.unlink(missing_ok=True)

    def _verified(self, sidecar: Path) -> tuple[Path, dict[str, Any]] | None:
        """The part a sidecar names and its record, when the part matches it; else dropped."""
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self._drop(sidecar, f"unreadable sidecar ({exc})")
            return None
        part = sidecar.with_suffix(".parquet")
        if not isinstance(record, dict) or record.get("file") != part.name:
            self._drop(sidecar, "sidecar does not name this part")
            return None
        if not part.is_file():
            self._drop(sidecar, "part is missing")
            return None
        if part.stat().st_size != record.get("bytes"):
            self._drop(sidecar, f"{part.stat().st_size} bytes, the sidecar recorded "
                                f"{record.get('bytes')}")
            return None
        if file_sha256(part) != record.get("sha256"):
            self._drop(sidecar, "changed since it was written (sha256 differs)")
            return None
        return part, record

    def _load_index(self) -> list[_PartIndex]:
        """Every verified part's keys (16 bytes and a row number per cached text), oldest
        part first. A part is read once per cache object; each call only lists the folder
        for parts other writers added since. Parts that do not verify are dropped."""
        if self._index is None:
            self._index = []
        known = {entry.sidecar.name for entry in self._index}
        added = False
        for sidecar in self._sidecars():
            if sidecar.name in known:
                continue
            verified = self._verified(sidecar)
            if verified is None:
                continue
            part, record = verified
            size = int(record.get("dim", 0))
            if self._index and size != self._index[0].dim:
                self._drop(sidecar, f"vectors of size {size}, not {self._index[0].dim}")
                continue
            try:
                schema = pq.read_schema(part)
                column = schema.field("embedding").type
                if (schema.field("text_hash").type != KEY_TYPE
                        or column != pa.binary(4 * size)):
                    self._drop(sidecar, f"unexpected columns {schema}")
                    continue
                keys = pq.read_table(part, columns=["text_hash"]).column("text_hash")
            except (OSError, KeyError, pa.ArrowException) as exc:
                self._drop(sidecar, f"unreadable ({exc})")
                continue
            self._index.append(_PartIndex.of(part, sidecar, size, keys))
            added = True
        if added:
            self._index.sort(key=lambda entry: entry.sidecar.name)  # names start with the time
        return self._index

    def lookup(self, keys: pa.Array) -> Lookup:
        """The cached vectors of `keys` (distinct). Keys are matched against the parts' key
        index (read once); only the parts holding a match are read, and each is verified
        against its sidecar (size, sha256) right before its vectors are used."""
        high, low = _key_words(keys)
        order = np.argsort(high, kind="stable")  # sorted needles: a binary search ~4x faster
        high, low = high[order], low[order]
        found = np.zeros(len(high), dtype=bool)  # in `order`
        vectors: np.ndarray | None = None
        parts = 0
        for entry in list(self._load_index()):
            parts += 1
            hits, rows = entry.match(high, low)
            hits &= ~found  # the oldest part wins a key written twice
            if not hits.any():
                continue
            if self._verified(entry.sidecar) is None:  # changed since the index was read
                self._index.remove(entry)  # type: ignore[union-attr]
                continue
            mark_used(entry.sidecar)
            try:
                column = pq.read_table(entry.part, columns=["embedding"]).column("embedding")
            except (OSError, pa.ArrowException) as exc:
                self._drop(entry.sidecar, f"unreadable ({exc})")
                self._index.remove(entry)  # type: ignore[union-attr]
                continue
            matrix = _vectors(column.combine_chunks(), entry.dim)
            if vectors is None:
                vectors = np.zeros((len(high), entry.dim), dtype=np.float32)
            vectors[order[hits]] = matrix[rows[hits]]
            found |= hits
        if vectors is None and self._index:
            vectors = np.zeros((len(high), self._index[0].dim), dtype=np.float32)
        found[order] = found.copy()  # back to the keys' own order
        return Lookup(vectors, found, parts)

    # -- writing ---------------------------------------------------------------------------

    def _collect_orphans(self) -> None:
        """Temporary files of writers that are gone, and parts whose writer died before
        renaming their sidecar into place."""
        now = time.time()
        for path in self.folder.glob(".*"):
            if ".tmp-" not in path.name:
                continue
            try:  # another writer may rename its temporary file away meanwhile
                old = now - path.stat().st_mtime > 24 * 3600
            except FileNotFoundError:
                continue
            if old or _writer_gone(path.name):
                path.unlink(missing_ok=True)
        for part in self.folder.glob("part-*.parquet"):
            try:
                stale = now - part.stat().st_mtime > ORPHAN_AGE_S
            except FileNotFoundError:
                continue
            if stale and not part.with_suffix(".json").exists():
                part.unlink(missing_ok=True)

    def _write_settings(self) -> None:
        """`settings.json`: what this folder's key covers (for people, not read back)."""
        target = self.folder / "settings.json"
        if target.is_file():
            return
        tmp = self.folder / f".settings.json.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{_HOST}"
        tmp.write_text(json.dumps({"format": FORMAT, "settings": self.settings}, indent=2,
                                  default=str), encoding="utf-8")
        tmp.replace(target)

    def append(self, keys: pa.Array, vectors: np.ndarray, run_id: str) -> str:
        """Add one part holding `vectors` under `keys`; returns its file name."""
        if len(keys) != vectors.shape[0]:
            raise ValueError(f"{len(keys)} keys for {vectors.shape[0]} vectors")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._collect_orphans()
        self._write_settings()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"part-{stamp}-{uuid.uuid4().hex[:12]}"
        suffix = f"tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{_HOST}"
        part, sidecar = self.folder / f"{name}.parquet", self.folder / f"{name}.json"
        tmp_part = self.folder / f".{part.name}.{suffix}"
        tmp_sidecar = self.folder / f".{sidecar.name}.{suffix}"
        dim = int(vectors.shape[1])
        raw = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
        table = pa.table({"text_hash": keys.cast(KEY_TYPE),
                          "embedding": pa.FixedSizeBinaryArray.from_buffers(
                              pa.binary(4 * dim), len(vectors), [None, pa.py_buffer(raw)])})
        try:
            # Uncompressed: hashes and float vectors do not compress; snappy only slows reads.
            pq.write_table(table, tmp_part, row_group_size=ROW_GROUP, compression="none")
            with tmp_part.open("rb") as handle:
                digest = stream_sha256(handle)
            record = {"format": FORMAT, "file": part.name, "rows": table.num_rows, "dim": dim,
                      "bytes": tmp_part.stat().st_size, "sha256": digest,
                      "run_id": run_id, "created_at": datetime.now(UTC).isoformat()}
            tmp_sidecar.write_text(json.dumps(record, indent=2), encoding="utf-8")
            tmp_part.rename(part)
            tmp_sidecar.rename(sidecar)  # last: from here on readers trust the part
        finally:
            tmp_part.unlink(missing_ok=True)
            tmp_sidecar.unlink(missing_ok=True)
        if self._index is not None:  # later lookups of this object find these texts too
            self._index.append(_PartIndex.of(part, sidecar, dim, table.column("text_hash")))
            self._index.sort(key=lambda entry: entry.sidecar.name)
        return part.name


def cached_encode(cache: RowCache, texts: Sequence[str], encode: EncodeFn,
                  run_id: str) -> tuple[np.ndarray, RowStats]:
    """Vectors of `texts` (distinct strings) in their order: cached ones read back, the rest
    embedded with `encode` (called once, on the missing texts only) and appended as one part."""
    stats = RowStats(key=cache.key, folder=str(cache.folder))
    keys = text_hashes(texts)
    hit = cache.lookup(keys)
    missing = np.flatnonzero(~hit.found)
    stats.parts_read, stats.rows_reused = hit.parts_read, int(hit.found.sum())
    stats.rows_computed = int(missing.size)
    vectors = hit.vectors
    if missing.size or vectors is None:
        new = np.asarray(encode([texts[i] for i in missing]), dtype=np.float32)
        if new.shape[0] != missing.size:
            raise RuntimeError(f"encoder returned {new.shape[0]} vectors for {missing.size} "
                               "texts")
        if vectors is None:  # nothing cached: `missing` is every row, in order
            vectors = new
        elif new.size and new.shape[1] != vectors.shape[1]:
            raise ArtifactError(f"{cache.folder}: cached vectors have {vectors.shape[1]} "
                                f"dimensions, the encoder gives {new.shape[1]}; delete the "
                                "folder so the next run recomputes it")
        else:
            vectors[missing] = new
        if missing.size:
            try:
                stats.part_written = cache.append(keys.take(pa.array(missing)), new, run_id)
                stats.parts_written = 1
            except OSError as exc:  # the vectors are computed: keep going, say why not saved
                stats.not_saved = f"{type(exc).__name__}: {exc}"
    stats.dropped = list(cache.dropped)
    return vectors, stats
