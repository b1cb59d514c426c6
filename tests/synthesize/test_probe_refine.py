"""`bilevel.probe_passes`: swaps tried with the evaluation's linear probe refitted on the set,
scored by its temperature-free cross-entropy on the demand rows."""

from __future__ import annotations

import numpy as np
import pytest

from distill_core.evaluate.linear_probe import linear_probe
from distill_core.synthesize.base import select_per_class
from distill_core.synthesize.probe_refine import ProbeInLoop, refine_with_probe
from tests.synthesize.test_bilevel import _blobs


def test_the_probe_in_the_loop_is_the_evaluation_probe() -> None:
    data, y = _blobs(0)
    x = data.features
    rows = [0, 5, 41, 47, 82, 90]
    probe = ProbeInLoop(x, y, np.arange(len(y)), c=1.0)
    model = probe.fit(rows)
    predicted = probe.logits(model, x).argmax(1)
    evaluated = linear_probe(x[rows], y[rows], x, y, [0, 1, 2], C=1.0)
    assert evaluated.accuracy == pytest.approx(float((predicted == y).mean()))
    # binary: one decision column becomes (0, z), the softmax of which is predict_proba
    binary = np.flatnonzero(y < 2)
    probe2 = ProbeInLoop(x[binary], y[binary], np.arange(len(binary)), c=1.0)
    model2 = probe2.fit([0, 3, 45, 50])
    from sklearn.linear_model import LogisticRegression

    reference = LogisticRegression(C=1.0, max_iter=2000).fit(x[binary][[0, 3, 45, 50]],
                                                              y[binary][[0, 3, 45, 50]])
    assert np.allclose(probe2.probabilities(model2, x[binary]),
                       reference.predict_proba(x[binary]), atol=1e-3)


def test_the_loss_ignores_the_probes_scale_but_not_its_direction() -> None:
    data, y = _blobs(1)
    probe = ProbeInLoop(data.features, y, np.arange(len(y)), c=1.0)
    model = probe.fit([0, 1, 40, 41, 80, 81])
    base = probe.loss(model)
    model.coef_, model.intercept_ = model.coef_ * 2, model.intercept_ * 2
    assert probe.loss(model) == pytest.approx(base, rel=1e-6)  # one step along the grid
    model.coef_ = -model.coef_  # the opposite direction fits the rows worse
    assert probe.loss(model) > base + 0.1


@pytest.mark.parametrize("seed", [0, 2])
def test_refinement_lowers_the_loss_to_a_local_optimum(seed: int) -> None:
    data, y = _blobs(seed, per_class=25)
    x = data.features
    start = select_per_class("herding", data, y, 2, seed).indices.tolist()
    demand = np.arange(len(y))
    picks, probe = refine_with_probe(x, y, start, [0, 1, 2], demand, shortlist=1000,
                                     passes=20)
    assert sorted(np.bincount(y[picks]).tolist()) == [2, 2, 2] and len(set(picks)) == 6
    before, after = probe.loss(probe.fit(start)), probe.loss(probe.fit(picks))
    assert after < before - 1e-3
    for slot, row in enumerate(picks):  # no single swap within a class lowers it further
        for other in np.flatnonzero(y == y[row]):
            if int(other) not in picks:
                trial = picks[:slot] + [int(other)] + picks[slot + 1:]
                assert probe.loss(probe.fit(trial)) >= after - 1e-6


def test_only_the_refined_classes_move() -> None:
    data, y = _blobs(3, per_class=30)
    start = select_per_class("herding", data, y, 3, 0).indices.tolist()
    picks, _ = refine_with_probe(data.features, y, start, [1], np.arange(len(y)), passes=3)
    assert [p for p in picks if y[p] != 1] == [p for p in start if y[p] != 1]
    assert picks != start  # class 1 did move


def test_bilevel_with_the_probe_keeps_budget_reserve_and_determinism() -> None:
    data, y = _blobs(4, per_class=40)
    params = {"probe_passes": 2, "probe_shortlist": 6}
    first = select_per_class("bilevel", data, y, 3, 0, params, oversample=2)
    again = select_per_class("bilevel", data, y, 3, 0, params, oversample=2)
    plain = select_per_class("bilevel", data, y, 3, 0, {"probe_passes": 0}, oversample=2)
    assert first.indices.tolist() == again.indices.tolist()
    for c in range(3):
        mine = first.indices[y[first.indices] == c]
        assert len(mine) == 6 and len(set(mine.tolist())) == 6  # budget 3 + reserve 3
    chosen = first.indices[first.ranks < 3]
    probe = ProbeInLoop(data.features, y, np.arange(len(y)), c=1.0)
    # scored on every row here (the run scores a demand sample of this size: all rows)
    assert (probe.loss(probe.fit(chosen.tolist()))
            <= probe.loss(probe.fit(plain.indices[plain.ranks < 3].tolist())) + 1e-9)


def test_the_refinement_runs_numpys_and_scipys_blas_on_one_thread(monkeypatch) -> None:
    """Both OpenBLAS pools (numpy's and scipy's, each loaded by then) see one thread during
    the refinement: alternating between them with more threads thrashed 2 cores."""
    import scipy.optimize  # noqa: F401 - loads scipy's BLAS
    from threadpoolctl import threadpool_info

    from distill_core.synthesize import probe_refine

    seen: list[list[int]] = []
    fit = probe_refine.fit_row_space_probe

    def watched(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"])
        return fit(*args, **kwargs)

    monkeypatch.setattr(probe_refine, "fit_row_space_probe", watched)
    data, y = _blobs(7, per_class=20)
    start = select_per_class("herding", data, y, 2, 0).indices.tolist()
    refine_with_probe(data.features, y, start, [0, 1, 2], np.arange(len(y)), passes=1)
    assert seen and all(threads and set(threads) == {1} for threads in seen)
