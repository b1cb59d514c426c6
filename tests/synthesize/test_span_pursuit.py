"""`span_pursuit`: each pick is the row that brings the most of the pool's probe into the
picks' span, the scores add up to the share brought in, every class gets its budget, and on
real SST-2 rows its span holds more of the probe than k-means' picks do."""

from __future__ import annotations

import numpy as np
import pytest

from distill_core.synthesize.base import ClassData, select_per_class
from distill_core.synthesize.learned_labels import centred_span, pool_probe
from tests.synthesize.fixtures import run_rows
from tests.synthesize.test_bilevel import _blobs


def _share(x: np.ndarray, rows: np.ndarray, weight: np.ndarray) -> float:
    """The share of ‖W‖² that lies in the centred span of `rows`."""
    basis = centred_span(x[rows])
    return float(((weight @ basis) ** 2).sum() / (weight**2).sum())


def test_each_pick_brings_the_most_of_the_probe_into_the_span() -> None:
    data, y = _blobs(3, per_class=40, classes=3, dim=10)
    x = data.features.astype(np.float64)
    weight, _ = pool_probe(x, y, 3)
    picked = select_per_class("span_pursuit", data, y, 3, seed=0)
    order = picked.indices[np.argsort(picked.ranks, kind="stable")]  # class by class
    assert sorted(np.bincount(y[picked.indices]).tolist()) == [3, 3, 3]
    assert (picked.ranks < 3).all()
    # the scores are the shares each pick brought in: they add up to the span's share
    assert picked.scores.sum() == pytest.approx(_share(x, picked.indices, weight), rel=1e-6)
    # the pick after the anchor (score 0) is the best single row by brute force, and its
    # score is the share that pair's span holds
    anchor = int(picked.indices[np.flatnonzero(picked.scores == 0)[0]])
    gains = [_share(x, np.array([anchor, r]), weight) if r != anchor else -1.0
             for r in range(len(y))]
    best = int(np.argmax(gains))
    assert best in picked.indices.tolist()
    assert picked.scores[picked.indices == best][0] == pytest.approx(gains[best], rel=1e-6)
    assert _share(x, picked.indices, weight) > 0.5
    assert len(set(order.tolist())) == 9


def test_its_span_holds_more_of_the_probe_than_other_picks_and_is_deterministic() -> None:
    data, y = _blobs(5, per_class=60, classes=3, dim=16)
    x = data.features.astype(np.float64)
    weight, _ = pool_probe(x, y, 3)
    pursued = select_per_class("span_pursuit", data, y, 4, seed=1)
    again = select_per_class("span_pursuit", data, y, 4, seed=1)
    assert np.array_equal(pursued.indices, again.indices)
    for method in ("kmeans", "herding", "random"):
        other = select_per_class(method, data, y, 4, seed=1)
        assert _share(x, pursued.indices, weight) > _share(x, other.indices, weight), method


def test_a_small_class_is_kept_whole_and_the_others_get_their_budget() -> None:
    data, y = _blobs(8, per_class=30, classes=3, dim=8)
    keep = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1),
                           np.flatnonzero(y == 2)[:2]])
    picked = select_per_class("span_pursuit", ClassData(data.features[keep]), y[keep], 5, 0)
    counts = np.bincount(y[keep][picked.indices])
    assert counts.tolist() == [5, 5, 2]
    assert picked.shortfall == {2: {"available": 2, "budget": 5}}
    assert np.isnan(picked.scores[y[keep][picked.indices] == 2]).all()


def test_on_real_rows_with_learned_labels_its_span_beats_kmeans(
        slice_dir, tmp_path, run_stages) -> None:
    """A run of `span_pursuit` with learned labels on real SST-2 rows: its picks' span holds
    more of the pool's probe than k-means' picks of the same run's pool, and the soft score
    is the probe fitted in that span."""
    import pyarrow.compute as pc

    from distill_core.artifacts.store import RunStore
    from distill_core.config import load_config
    from distill_core.synthesize.learned_labels import target_probe

    cfg = load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0]", "run.name=span",
                             "synthesize.method=span_pursuit", "synthesize.per_class=4",
                             "synthesize.labels.learn=true", "evaluate.baselines=[random]"])
    store, _ = run_stages(cfg, tmp_path)
    rows, x, y, eval_x, eval_y = run_rows(store, RunStore(tmp_path, cfg.run_id()))
    assert set(store.read("synthesize").column("method").to_pylist()) == {"span_pursuit"}
    pool = store.read("clean" if cfg.filter.corpus else "ingest")
    pool_x, pool_y = rows(pool.filter(pc.equal(pool.column("split"), "train")))
    pool_x = pool_x.astype(np.float64)
    weight, _ = pool_probe(pool_x, pool_y, 2)
    kmeans = select_per_class("kmeans", ClassData(pool_x), pool_y, 4, seed=0)
    position = {tuple(r): i for i, r in enumerate(pool_x)}
    picks = np.array([position[tuple(r)] for r in x.astype(np.float64)])
    assert _share(pool_x, picks, weight) > _share(pool_x, kmeans.indices, weight) + 0.05
    scores = {r["setting"]: r["accuracy"] for r in store.read("evaluate").to_pylist()
              if r["learner"] == "linear_probe"}
    target_w, target_b = target_probe(x, pool_x, pool_y, 2)
    target = float((np.argmax(eval_x @ target_w.T + target_b, axis=1) == eval_y).mean())
    assert scores["distilled_soft"] == pytest.approx(target, abs=1.5 / len(eval_y))
