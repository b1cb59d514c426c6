"""The one seed derivation: independent, reproducible integer seeds from a tuple of parts.

Every place that needs a seed for a part of the work (a class within a run seed,
a k-means slot, a prompt shard, one prompt's sample) derives it here, so the
same parts give the same seed in every module and process.
"""

from __future__ import annotations

import numpy as np


def seed_sequence(*parts: int) -> np.random.SeedSequence:
    """numpy's SeedSequence over `parts` (for callers that need more than one word)."""
    return np.random.SeedSequence([int(p) for p in parts])


def derive_seed(*parts: int) -> int:
    """A 32-bit seed derived from `parts` (e.g. run seed, class id, slot)."""
    return int(seed_sequence(*parts).generate_state(1)[0])
