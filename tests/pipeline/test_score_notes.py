"""The score table's note on seeds that all distilled the same rows."""

from __future__ import annotations

from distill_core.pipeline.stages.evaluate import shared_set_size


def test_shared_set_size_needs_two_replicates_with_the_same_rows() -> None:
    assert shared_set_size(["a", "b", "b", "a"], [0, 0, 1, 1]) == 2
    assert shared_set_size(["a", "b", "a", "c"], [0, 0, 1, 1]) is None
    assert shared_set_size(["a", "b"], [0, 0]) is None  # one seed: nothing to say
    assert shared_set_size([], []) is None
