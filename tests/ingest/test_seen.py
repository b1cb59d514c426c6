"""The compact seen-id record answers like a dict of first occurrences, across frozen runs."""

from __future__ import annotations

import numpy as np
import pytest

from distill_core.ingest import seen
from distill_core.ingest.seen import NOT_SEEN, SeenIds


def test_lookup_matches_a_dict_across_frozen_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seen, "MAX_RUN", 500)
    rng = np.random.default_rng(0)
    ids, first = SeenIds(), {}
    for batch in range(40):
        keys = rng.integers(0, 4000, 120, dtype=np.uint64)  # repeats within and across
        keys[0] = np.uint64(2**64 - 1)  # the largest id too
        expected = [first.get(int(k), NOT_SEEN) for k in keys]
        assert ids.lookup(keys).tolist() == expected
        distinct, at = np.unique(keys, return_index=True)
        new = np.array([int(k) not in first for k in distinct])
        tags = at[new] + batch * 1000
        first.update(zip(map(int, distinct[new]), map(int, tags), strict=True))
        ids.add(distinct[new], tags)
    assert len(ids) == len(first) and ids.nbytes == 16 * len(first)
    assert len(ids._frozen) >= 4  # the lookups above crossed several frozen runs
