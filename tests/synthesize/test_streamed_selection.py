"""Selection streamed over classes spilled to disk: the same rules and, for herding and the
first random draws, the same picks as in memory; k-means valid, seeded and prefix-stable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill_core.synthesize import class_rows, streamed
from distill_core.synthesize.base import select_per_class
from distill_core.synthesize.class_rows import SpillWriter
from distill_core.synthesize.streamed import StreamedSelection


def _blobs(n_per: int, centres: int, dim: int, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two classes, each a mixture of `centres` well-separated Gaussian blobs: (rows, labels,
    each row's blob id, unique over both classes)."""
    rng = np.random.default_rng(seed)
    rows, labels, blobs = [], [], []
    for label in (0, 1):
        means = rng.normal(scale=10.0, size=(centres, dim))
        which = rng.integers(0, centres, size=n_per)
        rows.append(means[which] + rng.normal(size=(n_per, dim)))
        labels.append(np.full(n_per, label))
        blobs.append(label * centres + which)
    order = rng.permutation(2 * n_per)  # classes interleaved, as in a corpus
    return (np.concatenate(rows)[order].astype(np.float32),
            np.concatenate(labels)[order].astype(np.int64), np.concatenate(blobs)[order])


def _streamed(method: str, x: np.ndarray, labels: np.ndarray, folder: Path, budget: int,
              oversample: int = 1, params: dict | None = None) -> StreamedSelection:
    writer = SpillWriter(folder)
    for start in range(0, len(x), 97):  # spilled in uneven batches, as from the parts
        writer.add(labels[start:start + 97], x[start:start + 97])
    return StreamedSelection(method, labels, writer.close(), budget, params or {}, oversample)


@pytest.fixture
def streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every class above the threshold, read in chunks of 64 rows."""
    monkeypatch.setattr(streamed, "STREAM_ABOVE_ROWS", 10)
    monkeypatch.setattr(streamed, "SAMPLE_ROWS", 200)
    monkeypatch.setattr(class_rows, "CHUNK_ROWS", 64)


def test_streamed_herding_picks_what_in_memory_herding_picks(tmp_path: Path,
                                                             streaming: None) -> None:
    x, labels, _ = _blobs(400, 5, 16)
    inputs = _streamed("herding", x, labels, tmp_path, budget=6, oversample=3)
    assert inputs.algorithms() == {"0": "herding (one pass per pick)",
                                   "1": "herding (one pass per pick)"}
    got = inputs.select(seed=1)
    want = select_per_class("herding", x, labels, 6, seed=1, oversample=3)
    assert np.array_equal(got.indices, want.indices) and len(got.indices) == 36
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-9)


def test_centred_classes_stream_what_centred_features_give_in_memory(tmp_path: Path,
                                                                     streaming: None) -> None:
    """Classes read back less the spill's mean (chunk by chunk) pick as herding in memory
    does on the features less their mean, normalised again."""
    from distill_core.synthesize.centering import centered

    x, labels, _ = _blobs(400, 5, 16)
    x += 25.0  # a large common part, as a static encoder's vectors have
    writer = SpillWriter(tmp_path)
    for start in range(0, len(x), 97):
        writer.add(labels[start:start + 97], x[start:start + 97])
    np.testing.assert_allclose(writer.mean(), x.mean(axis=0, dtype=np.float64), rtol=1e-6)
    classes = {label: rows.centered_on(writer.mean()) for label, rows in writer.close().items()}
    got = StreamedSelection("herding", labels, classes, 6, {}, 3).select(seed=1)
    want = select_per_class("herding", centered(x, x.mean(axis=0)), labels, 6, seed=1,
                            oversample=3)
    assert np.array_equal(got.indices, want.indices)
    raw = select_per_class("herding", x, labels, 6, seed=1, oversample=3)
    assert not np.array_equal(got.indices, raw.indices)


def test_streamed_kmeans_is_valid_seeded_and_its_budget_a_prefix_of_its_ranking(
        tmp_path: Path, streaming: None) -> None:
    x, labels, blob = _blobs(600, 4, 8)
    select = _streamed("kmeans", x, labels, tmp_path, budget=4, oversample=3,
                       params={"n_init": 2, "max_iter": 50}).select
    first, again = select(seed=3), select(seed=3)
    assert np.array_equal(first.indices, again.indices)
    assert np.array_equal(first.scores, again.scores)
    for label in (0, 1):  # 12 distinct rows of the class, the first 4 one per blob
        mine = first.indices[labels[first.indices] == label]
        assert len(mine) == 12 and len(set(mine.tolist())) == 12
    # The budget alone (oversample 1) is the ranking's first rows, class by class.
    budget_only = _streamed("kmeans", x, labels, tmp_path / "b", budget=4,
                            params={"n_init": 2, "max_iter": 50}).select(seed=3)
    ranked = first.indices.reshape(2, 12)[:, :4].ravel()
    assert np.array_equal(budget_only.indices, ranked)
    # Prototypes: on well-separated blobs each of a class's 4 picks sits in its own blob.
    in_memory = select_per_class("kmeans", x, labels, 4, seed=3, params={"n_init": 2})
    for picks in (budget_only.indices, in_memory.indices):
        assert sorted(blob[picks].tolist()) == list(range(8))
    # On structureless rows the seed decides the clustering.
    noise = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    seeded = _streamed("kmeans", noise, labels, tmp_path / "n", budget=4,
                       params={"n_init": 1, "max_iter": 20})
    assert not np.array_equal(seeded.select(seed=3).indices, seeded.select(seed=4).indices)


def test_streamed_random_draws_the_same_budget_and_a_distinct_reserve(streaming: None) -> None:
    labels = np.array([0] * 300 + [1] * 200)
    inputs = StreamedSelection("random", labels, None, 5, {}, oversample=4)
    got = inputs.select(seed=7)
    want = select_per_class("random", np.zeros((500, 0)), labels, 5, seed=7, oversample=4)
    for label in (0, 1):
        mine = got.indices[labels[got.indices] == label]
        theirs = want.indices[labels[want.indices] == label]
        assert np.array_equal(mine[:5], theirs[:5])
        assert len(mine) == 20 and len(set(mine.tolist())) == 20


def test_small_classes_take_the_in_memory_selector(tmp_path: Path) -> None:
    """Below the threshold a class is read whole: exactly today's k-means picks."""
    x, labels, _ = _blobs(150, 3, 8)
    inputs = _streamed("kmeans", x, labels, tmp_path, budget=3, oversample=2)
    got = inputs.select(seed=0)
    want = select_per_class("kmeans", x, labels, 3, seed=0, oversample=2)
    assert np.array_equal(got.indices, want.indices)
    assert inputs.algorithms()["0"].startswith("k-means (exact")
