"""A compact record of the 64-bit ids already seen, each with a 64-bit tag (where it was first).

Ingest deduplicates training rows across every batch of a corpus; a Python dict of millions
of hex ids would cost ~200 bytes an entry. Here an id costs 16 bytes: sorted numpy runs
that merge like a binary counter (a run is merged into the one before it while that one is
no larger), so adding N ids costs O(N log N) and a lookup searches about log2(N / batch)
runs.
"""

from __future__ import annotations

import numpy as np

NOT_SEEN = -1


class SeenIds:
    """Ids (uint64) seen so far, each mapped to the int64 tag it was first added with."""

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted keys, their tags)

    def __len__(self) -> int:
        return sum(len(keys) for keys, _ in self._runs)

    @property
    def nbytes(self) -> int:
        return sum(keys.nbytes + tags.nbytes for keys, tags in self._runs)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The tag of each key, or NOT_SEEN."""
        keys = np.asarray(keys, dtype=np.uint64)
        found = np.full(len(keys), NOT_SEEN, dtype=np.int64)
        for run_keys, run_tags in self._runs:
            at = np.minimum(np.searchsorted(run_keys, keys), len(run_keys) - 1)
            hit = run_keys[at] == keys
            found[hit] = run_tags[at[hit]]  # a key is in one run at most
        return found

    def add(self, keys: np.ndarray, tags: np.ndarray) -> None:
        """Record `keys` (distinct, none seen before) with their `tags`."""
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys) == 0:
            return
        order = np.argsort(keys, kind="stable")
        run = (keys[order], np.asarray(tags, dtype=np.int64)[order])
        while self._runs and len(self._runs[-1][0]) <= len(run[0]):
            before = self._runs.pop()
            merged_keys = np.concatenate([before[0], run[0]])
            order = np.argsort(merged_keys, kind="stable")
            run = (merged_keys[order], np.concatenate([before[1], run[1]])[order])
            del merged_keys, before
        self._runs.append(run)
