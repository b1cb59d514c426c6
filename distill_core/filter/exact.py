"""Exact duplicates: the same normalised text (and pair) within a group; the first is kept.

Texts are keyed by a 16-byte BLAKE2b digest of (group, normalised text), so a streamed run
can carry what it has seen from batch to batch (`SeenTexts`) in about 32 bytes a distinct
row (the digest and the first row's id, in sorted arrays) rather than the texts
themselves."""

from __future__ import annotations

from hashlib import blake2b

import numpy as np

from distill_core.filter.base import Drop, FilterInput

KEY = np.dtype("V16")  # a BLAKE2b digest of (group, normalised text)


class SeenTexts:
    """The distinct texts seen so far, each with the `example_id` of its first row, in a few
    sorted runs of arrays: a digest's two 8-byte halves and the id as bytes. A batch's new
    texts make a run of their own, merged with the run before it while that one is no
    larger (so about log2(batches) runs, each row moved about that many times, never the
    whole store per batch), and a lookup searches each run by the first half. A dict of
    digest to id held about 180 bytes a text (0.9 GB at 5M distinct rows, in the streamed
    clean stage); these hold 16 plus the id's length."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (hi, lo, ids)

    def __len__(self) -> int:
        return sum(len(hi) for hi, _, _ in self.runs)

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per key: whether it was seen, and its first row's id (b"" when not seen). The
        keys are looked up in order of their first half (a binary search over sorted queries
        walks memory in order)."""
        hi, lo = halves(keys)
        order = np.argsort(hi)
        hi, lo = hi[order], lo[order]
        seen = np.zeros(len(keys), dtype=bool)
        first = np.zeros(len(keys), dtype="S1")
        for run_hi, run_lo, run_ids in self.runs:
            at = np.minimum(np.searchsorted(run_hi, hi), len(run_hi) - 1)
            same_hi = run_hi[at] == hi
            hit = same_hi & (run_lo[at] == lo)
            for key in np.flatnonzero(same_hi & ~hit).tolist():  # another text, same half
                stop = np.searchsorted(run_hi, hi[key], side="right")
                same = np.flatnonzero(run_lo[at[key]:stop] == lo[key])
                if len(same):
                    hit[key], at[key] = True, at[key] + same[0]
            first = first.astype(np.promote_types(first.dtype, run_ids.dtype), copy=False)
            seen |= hit
            first[hit] = run_ids[at[hit]]
        unsorted_seen, unsorted_first = np.empty_like(seen), np.empty_like(first)
        unsorted_seen[order], unsorted_first[order] = seen, first
        return unsorted_seen, unsorted_first

    def add(self, keys: np.ndarray, ids: list[str]) -> None:
        """Texts not seen before (distinct `keys`), and their first rows' ids."""
        if not len(keys):
            return
        hi, lo = halves(keys)
        self.runs.append(_sorted_run(hi, lo, np.array([i.encode() for i in ids], dtype=bytes)))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= len(self.runs[-1][0]):
            (hi_a, lo_a, ids_a), (hi_b, lo_b, ids_b) = self.runs.pop(-2), self.runs.pop()
            wider = np.promote_types(ids_a.dtype, ids_b.dtype)  # never cut an id short
            self.runs.append(_sorted_run(np.concatenate([hi_a, hi_b]),
                                         np.concatenate([lo_a, lo_b]),
                                         np.concatenate([ids_a.astype(wider, copy=False),
                                                         ids_b.astype(wider, copy=False)])))


def halves(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A digest's first and second 8 bytes as unsigned integers."""
    pairs = np.ascontiguousarray(keys).view(np.uint64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def _sorted_run(hi: np.ndarray, lo: np.ndarray, ids: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(hi, kind="stable")
    return hi[order], lo[order], ids[order]


def text_keys(data: FilterInput) -> np.ndarray:
    """Each row's digest of (group, normalised text)."""
    digests = b"".join(blake2b(f"{group}\x1f{text}".encode(), digest_size=16).digest()
                       for group, text in zip(data.groups.tolist(), data.normalized_texts(),
                                              strict=True))
    return np.frombuffer(digests, dtype=KEY)


def exact_dedup(data: FilterInput, seen: SeenTexts | None = None) -> list[Drop]:
    """Rows whose normalised text an earlier row of the same group has: an earlier row of
    this input, or of earlier batches held in `seen` (updated in place with this input's
    new texts)."""
    seen = SeenTexts() if seen is None else seen
    keys = text_keys(data)
    if not len(keys):
        return []
    distinct, first_row, inverse = np.unique(keys, return_index=True, return_inverse=True)
    earlier, earlier_id = seen.find(distinct)  # per distinct text: seen in an earlier batch?
    ids = data.ids()
    drops = []
    for row in np.flatnonzero(earlier[inverse] | (first_row[inverse] != np.arange(
            len(keys)))).tolist():
        text = inverse[row]
        first = bytes(earlier_id[text]).decode() if earlier[text] else ids[first_row[text]]
        drops.append(Drop(row, "exact_duplicate", f"same normalised text as {first}"))
    new = np.flatnonzero(~earlier)
    seen.add(distinct[new], [ids[i] for i in first_row[new].tolist()])
    return drops
