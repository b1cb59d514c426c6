"""Near duplicates: MinHash LSH on word shingles of the normalised text, first occurrence kept.

In input (priority) order, a row whose estimated Jaccard similarity with a row kept before it
(same group) reaches `threshold` is dropped, naming that row and the estimate; the others
are kept (`filter/near_seen.py`). A streamed clean stage passes the same `NearSeen` for
every batch, so a row is checked against the kept rows of every earlier batch too.

Reason: `near_duplicate`. References: Broder 1997; datasketch's MinHash and MinHashLSH.
"""

from __future__ import annotations

from distill_core.filter.base import Drop, FilterInput
from distill_core.filter.near_seen import NearSeen


def near_dedup(data: FilterInput, shingle: int, num_perm: int, threshold: float,
               seed: int, seen: NearSeen | None = None) -> list[Drop]:
    """Rows near an earlier kept row of this input, or of earlier inputs held in `seen`
    (updated in place with this input's kept rows)."""
    seen = NearSeen(shingle, num_perm, threshold, seed) if seen is None else seen
    found = seen.check(data.normalized_texts(), data.groups, data.ids())
    return [Drop(row, "near_duplicate", f"estimated Jaccard {jaccard:.2f} with {kept}")
            for row, kept, jaccard in found]
