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
    """The distinct texts seen so far, each with the `example_id` of its first row: the
    digests sorted (a binary search finds a batch's keys), the ids beside them as bytes. A
    dict of digest to id held about 180 bytes a text (0.9 GB at 5M distinct rows, in the
    streamed clean stage); these arrays hold 16 plus the id's length."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=KEY)
        self.ids = np.zeros(0, dtype="S1")

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Where each of `keys` is in `self.keys`, or -1 for a text not seen."""
        at = np.searchsorted(self.keys, keys)
        hit = at < len(self.keys)
        hit[hit] = self.keys[at[hit]] == keys[hit]
        return np.where(hit, at, -1)

    def first_id(self, index: int) -> str:
        return bytes(self.ids[index]).decode()

    def add(self, keys: np.ndarray, ids: list[str]) -> None:
        """Texts not seen before (distinct `keys`), and their first rows' ids."""
        if not len(keys):
            return
        encoded = np.array([i.encode() for i in ids], dtype=bytes)
        order = np.argsort(keys)
        at = np.searchsorted(self.keys, keys[order])
        wider = np.promote_types(self.ids.dtype, encoded.dtype)  # never cut an id short
        self.keys = np.insert(self.keys, at, keys[order])
        self.ids = np.insert(self.ids.astype(wider, copy=False), at, encoded[order])


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
    earlier = seen.find(distinct)  # per distinct text: where an earlier batch had it
    ids = data.ids()
    drops = []
    for row in np.flatnonzero((earlier[inverse] >= 0) | (first_row[inverse] != np.arange(
            len(keys)))).tolist():
        text = inverse[row]
        first = seen.first_id(earlier[text]) if earlier[text] >= 0 else ids[first_row[text]]
        drops.append(Drop(row, "exact_duplicate", f"same normalised text as {first}"))
    new = np.flatnonzero(earlier < 0)
    seen.add(distinct[new], [ids[i] for i in first_row[new].tolist()])
    return drops
