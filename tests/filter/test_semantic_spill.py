"""Semantic dedup over spilled vectors drops what it drops in memory, and clusters compared
in blocks drop what they drop compared whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill_core.filter import semantic, semantic_spill
from distill_core.filter.semantic import greedy_drops, semantic_drops
from distill_core.filter.semantic_spill import SemanticSpill


def _planted(rows: int = 600, copies: int = 60, dim: int = 32) -> tuple[np.ndarray, list]:
    """Unit vectors with `copies` rows that copy an earlier row up to a little noise
    (cosine above 0.99), placed later in the order: (vectors, [(original, copy)])."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(rows, dim)).astype(np.float32)
    pairs = []
    originals = rng.choice(rows // 2, copies, replace=False).tolist()
    later = rng.choice(np.arange(rows // 2, rows), copies, replace=False).tolist()
    for original, copy in zip(originals, later, strict=True):
        vectors[copy] = vectors[original] + rng.normal(scale=0.01, size=dim)
        pairs.append((original, copy))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, pairs


@pytest.mark.parametrize("coarse_rows, fit_rows", [(100_000, 100_000), (100, 250)])
def test_spilled_semantic_dedup_equals_it_in_memory(tmp_path: Path, monkeypatch,
                                                   coarse_rows: int, fit_rows: int) -> None:
    monkeypatch.setattr(semantic, "COARSE_ROWS", coarse_rows)  # one coarse cluster, or six
    monkeypatch.setattr(semantic, "FIT_ROWS", fit_rows)
    monkeypatch.setattr(semantic, "ASSIGN_CELLS", 60)  # several chunks at every level
    monkeypatch.setattr(semantic_spill, "READ_ROWS", 50)
    vectors, pairs = _planted()
    expected = semantic_drops(vectors, cluster_size=20, seed=3, epsilon=0.95)
    # Every planted copy or its original goes, naming the other.
    named = {(int(d), int(k)) for d, k in zip(expected.dropped, expected.kept, strict=True)}
    assert all((c, o) in named or (o, c) in named for o, c in pairs)
    assert len(expected.dropped) == len(pairs)  # nothing else is that close

    positions = 3 * np.arange(len(vectors)) + 5  # corpus positions, with other rows between
    spill = SemanticSpill(tmp_path / "spill", epsilon=0.95, cluster_size=20, seed=3)
    for lo in range(0, len(vectors), 97):
        spill.add(positions[lo:lo + 97], vectors[lo:lo + 97])
    found = spill.drops()
    order = np.argsort(found.dropped)
    assert found.dropped[order].tolist() == positions[np.sort(expected.dropped)].tolist()
    by_expected = np.argsort(expected.dropped)
    assert found.kept[order].tolist() == positions[expected.kept[by_expected]].tolist()
    assert found.cosine[order].tolist() == expected.cosine[by_expected].tolist()
    assert list((tmp_path / "spill").iterdir()) == []  # the spill and coarse files are gone


def test_coarse_clusters_are_fitted_on_a_sample_and_keep_each_row_in_one(monkeypatch) -> None:
    monkeypatch.setattr(semantic, "COARSE_ROWS", 100)
    monkeypatch.setattr(semantic, "FIT_ROWS", 200)
    vectors, pairs = _planted()
    sample = semantic.fit_rows(600, 0)
    assert len(sample) == len(np.unique(sample)) == 200 and (np.diff(sample) > 0).all()
    assert semantic.fit_rows(200, 0).tolist() == list(range(200))
    coarse = semantic.coarse_centroids(vectors[sample], 600, 0)
    assert len(coarse) == 6
    labels, _ = semantic.nearest(vectors, coarse)
    members = semantic.coarse_members(labels, len(coarse))
    assert sorted(np.concatenate(members).tolist()) == list(range(600))
    assert all((np.diff(m) > 0).all() for m in members)
    found = semantic_drops(vectors, cluster_size=20, seed=0, epsilon=0.95)
    named = {(int(d), int(k)) for d, k in zip(found.dropped, found.kept, strict=True)}
    assert sum((c, o) in named or (o, c) in named for o, c in pairs) >= 0.9 * len(pairs)


def test_a_cluster_compared_in_blocks_drops_what_it_drops_whole(monkeypatch) -> None:
    vectors, _ = _planted(rows=300, copies=40)
    order = np.random.default_rng(0).permutation(300)  # a visiting order
    labels = np.zeros(300, np.int32)  # one cluster of 300 rows
    whole = greedy_drops(vectors, order, labels, 0.95)
    monkeypatch.setattr(semantic, "BLOCK_ROWS", 7)
    blocks = greedy_drops(vectors, order, labels, 0.95)
    assert len(whole.dropped) == 40
    assert blocks.dropped.tolist() == whole.dropped.tolist()
    assert blocks.kept.tolist() == whole.kept.tolist()
    np.testing.assert_allclose(blocks.cosine, whole.cosine, atol=1e-6)


def test_nothing_added_drops_nothing(tmp_path: Path) -> None:
    spill = SemanticSpill(tmp_path / "s", 0.95, 200, 0)
    assert len(spill.drops().dropped) == 0
