"""A compact record of the 64-bit ids already seen, each with a 64-bit tag (where it was first).

Ingest deduplicates training rows across every batch of a corpus; a Python dict of millions
of hex ids would cost ~200 bytes an entry. Here an id costs 16 bytes, in sorted numpy runs:
new ids are merged into one active run (a linear `np.insert`, no re-sort), which is frozen
when it holds `MAX_RUN` ids. A lookup is a binary search per run, so a batch costs the same
at 100 k ids as at 5 M (five frozen runs, 80 MB), and no merge holds more than a few times
16 MB beside the runs.
"""

from __future__ import annotations

import numpy as np

NOT_SEEN = -1
MAX_RUN = 1 << 20  # ids per sorted run (16 MB)


class SeenIds:
    """Ids (uint64) seen so far, each mapped to the int64 tag it was first added with."""

    def __init__(self) -> None:
        self._frozen: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted keys, their tags)
        self._keys = np.empty(0, dtype=np.uint64)
        self._tags = np.empty(0, dtype=np.int64)

    def _runs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [*self._frozen, (self._keys, self._tags)]

    def __len__(self) -> int:
        return sum(len(keys) for keys, _ in self._runs())

    @property
    def nbytes(self) -> int:
        return sum(keys.nbytes + tags.nbytes for keys, tags in self._runs())

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The tag of each key, or NOT_SEEN."""
        keys = np.asarray(keys, dtype=np.uint64)
        order = np.argsort(keys)  # sorted needles search several times faster
        needles = keys[order]
        found_sorted = np.full(len(keys), NOT_SEEN, dtype=np.int64)
        for run_keys, run_tags in self._runs():
            if len(run_keys) == 0:
                continue
            at = np.minimum(np.searchsorted(run_keys, needles), len(run_keys) - 1)
            hit = run_keys[at] == needles
            found_sorted[hit] = run_tags[at[hit]]  # a key is in one run at most
        found = np.empty_like(found_sorted)
        found[order] = found_sorted
        return found

    def add(self, keys: np.ndarray, tags: np.ndarray) -> None:
        """Record `keys` (distinct, none seen before) with their `tags`."""
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys) == 0:
            return
        order = np.argsort(keys, kind="stable")
        keys, tags = keys[order], np.asarray(tags, dtype=np.int64)[order]
        at = np.searchsorted(self._keys, keys)
        self._keys = np.insert(self._keys, at, keys)
        self._tags = np.insert(self._tags, at, tags)
        if len(self._keys) >= MAX_RUN:
            self._frozen.append((self._keys, self._tags))
            self._keys = np.empty(0, dtype=np.uint64)
            self._tags = np.empty(0, dtype=np.int64)
