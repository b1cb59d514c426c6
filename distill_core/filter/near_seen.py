"""Near duplicates in one pass, in input order: each row checked against the rows kept before
it, so a corpus can be deduplicated batch by batch while holding a small state.

A row is dropped when the MinHash estimate of its Jaccard similarity (word shingles of the
normalised text; datasketch's signatures) with an earlier kept row of its group reaches the
threshold; otherwise it is kept and later rows are checked against it. So no two kept rows
are near duplicates as far as LSH finds them, and a row is never dropped for resembling a row
that was itself dropped (first occurrence kept, as exact dedup does).

Candidates come from LSH banding with datasketch's band and row counts for the threshold and
number of permutations (0.8 and 128: 9 bands of 13 rows): two rows are candidates when one
band of their signatures is equal; each candidate is confirmed on the whole signatures. The
kept rows are held as one 8-byte entry per band (a 32-bit hash of the band's values and the
group, and the row's kept index) in sorted runs merged as `SeenTexts`'s are, plus their
signatures (4 bytes a permutation) and ids: in memory, or spilled to files in a scratch
folder (`spill`) for a corpus, of which only the candidates' records are read back.
At 5M kept rows: 360 MB of band entries in memory, 2.6 GB of signatures on disk.

Reason: `near_duplicate`. References: Broder 1997; Leskovec, Rajaraman & Ullman, Mining of
Massive Datasets, ch. 3 (banding); datasketch's MinHash and MinHashLSH parameters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path

import numpy as np

LOW32 = np.uint64(0xFFFFFFFF)
# odd 64-bit multipliers (splitmix64's) for the band hash
MIX_A = np.uint64(0xBF58476D1CE4E5B9)
MIX_B = np.uint64(0x94D049BB133111EB)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def word_shingles(text: str, size: int) -> list[bytes]:
    """Distinct word n-grams of a normalised text; the whole text when it is shorter."""
    words = text.split()
    if len(words) <= size:
        return [" ".join(words).encode("utf-8")]
    return list(dict.fromkeys(" ".join(words[i:i + size]).encode("utf-8")
                              for i in range(len(words) - size + 1)))


def signatures(texts: list[str], shingle: int, num_perm: int, seed: int,
               chunk_rows: int = 2048) -> np.ndarray:
    """MinHash signatures of the texts' shingles, [n, num_perm] uint32: the values of
    datasketch's `MinHash(scheme="legacy")` (each shingle's `sha1_hash32`, permuted as
    (a h + b) mod (2^61 - 1), cut to 32 bits; the minimum per permutation), computed a chunk
    of rows at a time as one array operation rather than one MinHash object per row."""
    from datasketch import MinHash  # imported when used: a cached rerun needs none of it
    from datasketch.hashfunc import sha1_hash32

    out = np.empty((len(texts), num_perm), np.uint32)
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="legacy").permutations
    prime, max_hash = np.uint64((1 << 61) - 1), np.uint64((1 << 32) - 1)
    for start in range(0, len(texts), chunk_rows):
        shingles = [word_shingles(t, shingle) for t in texts[start:start + chunk_rows]]
        counts = np.fromiter((len(s) for s in shingles), np.int64, len(shingles))
        hashes = np.fromiter((sha1_hash32(x) for s in shingles for x in s), np.uint64,
                             int(counts.sum()))
        with np.errstate(over="ignore"):  # datasketch's arithmetic wraps the same way
            permuted = ((hashes[:, None] * a + b) % prime) & max_hash
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out[start:start + len(shingles)] = np.minimum.reduceat(permuted, offsets, axis=0)
    return out


def bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band): datasketch's choice for the threshold (equal weights on false
    positives and false negatives)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return int(lsh.b), int(lsh.r)


def group_codes(groups: np.ndarray) -> np.ndarray:
    """Each row's group as a uint64 that is the same in every batch: the integer itself, or
    an 8-byte digest of its text."""
    if np.issubdtype(groups.dtype, np.integer):
        return groups.astype(np.int64).view(np.uint64)
    return np.array([int.from_bytes(blake2b(str(g).encode(), digest_size=8).digest(), "little")
                     for g in groups.tolist()], dtype=np.uint64)


def band_keys(sigs: np.ndarray, groups: np.ndarray, n_bands: int, rows: int) -> np.ndarray:
    """[n, n_bands] uint32: a hash of each band's values and the row's group (equal bands
    of one group, equal keys; other bands collide with odds about 2**-32, and every candidate
    is confirmed on the signatures)."""
    out = np.empty((len(sigs), n_bands), np.uint32)
    with np.errstate(over="ignore"):
        base = groups * GOLDEN
        for band in range(n_bands):
            h = base ^ np.uint64(band + 1) * MIX_B
            for column in sigs[:, band * rows:(band + 1) * rows].T:
                h = (h ^ column.astype(np.uint64)) * MIX_A
                h ^= h >> np.uint64(31)
            out[:, band] = (h >> np.uint64(32)).astype(np.uint32)
    return out


class BandRuns:
    """One band's entries (key << 32 | kept index) in a few sorted runs: a batch's entries
    are a run of their own, merged with the run before while that one is no larger."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def add(self, keys: np.ndarray, kept_index: np.ndarray) -> None:
        if not len(keys):
            return
        self.runs.append(np.sort((keys.astype(np.uint64) << np.uint64(32))
                                 | kept_index.astype(np.uint64)))
        while len(self.runs) > 1 and len(self.runs[-2]) <= len(self.runs[-1]):
            last, before = self.runs.pop(), self.runs.pop()
            self.runs.append(np.sort(np.concatenate([before, last])))

    def matches(self, keys: np.ndarray) -> dict[int, list[int]]:
        """For each query row with a stored entry of the same key: the kept indices."""
        found: dict[int, list[int]] = {}
        if not self.runs:
            return found
        low = keys.astype(np.uint64) << np.uint64(32)
        high = low | LOW32
        for run in self.runs:
            start = np.searchsorted(run, low, side="left")
            stop = np.searchsorted(run, high, side="right")
            for row in np.flatnonzero(stop > start).tolist():
                found.setdefault(row, []).extend(
                    (run[start[row]:stop[row]] & LOW32).astype(np.int64).tolist())
        return found


def _record_type(num_perm: int, id_bytes: int) -> np.dtype:
    """One kept row: its signature, group code and id."""
    return np.dtype([("sig", np.uint32, (num_perm,)), ("group", np.uint64),
                     ("id", f"S{max(id_bytes, 1)}")])


@dataclass
class KeptRows:
    """The kept rows' signatures, groups and ids by kept index, batch by batch: in memory, or
    written to one file per batch in `spill` and read back a record at a time (`os.pread`: no
    mapping, so only the records asked for are read and nothing of the files stays
    resident)."""

    spill: Path | None = None
    starts: list[int] = field(default_factory=list)
    chunks: list[np.ndarray] = field(default_factory=list)  # in memory
    files: list[tuple[int, np.dtype]] = field(default_factory=list)  # spilled: (fd, record)
    count: int = 0

    def add(self, sigs: np.ndarray, ids: list[str], groups: np.ndarray) -> None:
        if not len(sigs):
            return
        encoded = [i.encode() for i in ids]
        records = np.empty(len(sigs), _record_type(sigs.shape[1], max(map(len, encoded))))
        records["sig"], records["group"], records["id"] = sigs, groups, encoded
        if self.spill is None:
            self.chunks.append(records)
        else:
            self.spill.mkdir(parents=True, exist_ok=True)
            path = self.spill / f"kept-{len(self.starts):06d}.bin"
            path.write_bytes(records.tobytes())
            self.files.append((os.open(path, os.O_RDONLY), records.dtype))
        self.starts.append(self.count)
        self.count += len(sigs)

    def record(self, index: int) -> np.void:
        chunk = int(np.searchsorted(self.starts, index, side="right")) - 1
        row = index - self.starts[chunk]
        if self.spill is None:
            return self.chunks[chunk][row]
        fd, dtype = self.files[chunk]
        return np.frombuffer(os.pread(fd, dtype.itemsize, row * dtype.itemsize), dtype)[0]

    def close(self) -> None:
        """Close the spilled files (the caller removes the folder)."""
        for fd, _ in self.files:
            os.close(fd)
        self.files = []


class NearSeen:
    """What a one-pass near dedup carries from batch to batch: the kept rows' band entries
    (`BandRuns`, in memory) and their signatures and ids (`KeptRows`)."""

    def __init__(self, shingle: int, num_perm: int, threshold: float, seed: int,
                 spill: Path | None = None) -> None:
        self.shingle, self.num_perm, self.threshold, self.seed = (shingle, num_perm,
                                                                  threshold, seed)
        self.n_bands, self.rows = bands(threshold, num_perm)
        self.bands = [BandRuns() for _ in range(self.n_bands)]
        self.kept = KeptRows(spill)

    def check(self, texts: list[str], groups: np.ndarray, ids: list[str]
              ) -> list[tuple[int, str, float]]:
        """The rows of this input (in order, after every earlier input) that are near an
        earlier kept row: (row, that kept row's id, estimated Jaccard); the others are kept
        and remembered."""
        sigs = signatures(texts, self.shingle, self.num_perm, self.seed)
        codes = group_codes(groups)
        keys = band_keys(sigs, codes, self.n_bands, self.rows)
        earlier = [band.matches(keys[:, b]) for b, band in enumerate(self.bands)]
        # candidates by kept index: earlier inputs' kept rows, then this input's (from `first`)
        first = self.kept.count
        local: list[dict[int, list[int]]] = [{} for _ in range(self.n_bands)]
        key_lists = keys.T.tolist()
        kept_rows: list[int] = []
        drops = []
        for row in range(len(texts)):
            candidates = {i for band in earlier for i in band.get(row, ())}
            candidates.update(i for b in range(self.n_bands)
                              for i in local[b].get(key_lists[b][row], ()))
            best, best_j, best_id = None, -1.0, ""
            for index in sorted(candidates):  # ties go to the earliest kept row
                if index < first:
                    record = self.kept.record(index)
                    group, other, other_id = int(record["group"]), record["sig"], record["id"]
                else:
                    at = kept_rows[index - first]
                    group, other, other_id = int(codes[at]), sigs[at], ids[at]
                if group != int(codes[row]):  # a band key collision across groups
                    continue
                jaccard = float(np.count_nonzero(other == sigs[row])) / self.num_perm
                if jaccard >= self.threshold and jaccard > best_j:
                    best, best_j, best_id = index, jaccard, other_id
            if best is not None:
                kept_id = best_id if isinstance(best_id, str) else bytes(best_id).decode()
                drops.append((row, kept_id, best_j))
                continue
            for b in range(self.n_bands):
                local[b].setdefault(key_lists[b][row], []).append(first + len(kept_rows))
            kept_rows.append(row)
        kept = np.asarray(kept_rows, dtype=np.int64)
        for b, band in enumerate(self.bands):
            band.add(keys[kept, b], first + np.arange(len(kept)))
        self.kept.add(sigs[kept], [ids[i] for i in kept_rows], codes[kept])
        return drops

    def close(self) -> None:
        """Close the spilled files of the kept rows."""
        self.kept.close()
