"""Every method ranks beyond its budget (the filter stage's reserve) without changing its picks:
the first `per_class` rows of a class's ranking are exactly its selection at that budget."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from distill_core.config import GenerateSection, load_config
from distill_core.generate.candidates import ClassPool, normalised, slot_chooser
from distill_core.methods.generative import with_reserve
from distill_core.synthesize.base import ClassData, select_per_class
from distill_core.synthesize.kmeans_prototypes import kmeans_prototypes
from distill_core.synthesize.stage import SelectionInputs, select_candidates
from tests.synthesize.fixtures import class_data, two_class_train

METHODS = ["random", "kmeans", "herding", "kcenter_greedy", "facility_location", "bilevel",
           "span_pursuit", "gradmatch", "el2n"]


def _data(seed: int = 0, n: int = 90, dim: int = 8, classes: int = 3) -> ClassData:
    return class_data(seed, n, dim, classes)


def _per_class(picked, labels: np.ndarray) -> dict[int, list[int]]:
    return {int(c): picked.indices[labels[picked.indices] == c].tolist()
            for c in np.unique(labels)}


@pytest.mark.parametrize("method", METHODS)
def test_ranking_beyond_the_budget_keeps_the_budget_picks_first(method: str) -> None:
    data, labels = _data(), np.repeat([0, 1, 2], 30)
    params = {"keep_weights": True} if method == "gradmatch" else {}
    plain = select_per_class(method, data, labels, 4, seed=3, params=params)
    ranked = select_per_class(method, data, labels, 4, seed=3, params=params, oversample=3)
    for c, rows in _per_class(ranked, labels).items():
        assert rows[:4] == _per_class(plain, labels)[c]  # same picks, same order
        assert len(rows) == len(set(rows))
        assert len(rows) == 12  # 4 x 3 (el2n: from the 27 rows left after pruning)
    in_class = ranked.ranks[labels[ranked.indices] == 0]
    assert in_class.tolist() == list(range(12))
    if method == "gradmatch":  # the budget's weights unchanged, the reserve at the mean
        assert np.allclose(ranked.weights[ranked.ranks < 4], plain.weights)
        assert np.all(ranked.weights[ranked.ranks >= 4] == 1.0)


@pytest.mark.parametrize("method", METHODS)
def test_a_class_ranked_to_exhaustion_lists_each_row_once(method: str) -> None:
    data, labels = _data(n=30, classes=1), np.zeros(30, dtype=int)
    ranked = select_per_class(method, data, labels, 5, seed=0, oversample=100)
    expected = 27 if method == "el2n" else 30  # el2n: the hardest 10% are never ranked
    assert len(ranked.indices) == len(set(ranked.indices.tolist())) == expected


def test_kmeans_reserve_takes_each_clusters_next_nearest_member() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=8.0, size=(4, 6))
    features = np.concatenate([c + rng.normal(size=(20, 6)) for c in centres]).astype(np.float32)
    picked = kmeans_prototypes(ClassData(features), 4, 0, ranked=12)
    blob = picked.indices // 20
    assert sorted(blob[:4].tolist()) == [0, 1, 2, 3]
    # rounds two and three: one more member of each cluster, the clusters in the same order
    assert blob[4:8].tolist() == blob[:4].tolist() == blob[8:12].tolist()
    for start in (4, 8):  # each further member is farther from its centroid than the last
        assert np.all(picked.scores[start:start + 4] >= picked.scores[start - 4:start] - 1e-6)


def test_synthesize_writes_the_ranking_and_accounts_for_every_row() -> None:
    n = 40
    train = two_class_train(n, 25)
    features = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    inputs = SelectionInputs("herding", features, train.column("label_id").to_numpy(), 3, {},
                             oversample=2)
    result = select_candidates(train, inputs, [0], "run-x")
    ranks = {}
    for row in result.candidates.to_pylist():
        ranks.setdefault(row["label"], []).append(row["rank"])
    assert ranks == {"a": list(range(6)), "b": list(range(6))}
    assert result.candidates.num_rows + result.counts["rows_rejected"] == n
    assert result.counts["implicit_rejects"] == {"not_selected": [n - 12]}
    assert result.counts["oversample"] == 2
    assert load_config(None, []).synthesize.oversample == 3  # the default reserve
    assert load_config(None, ["synthesize.oversample=1"]).synthesize.oversample == 1


def test_generative_reserve_is_the_runners_up_nearest_each_pick() -> None:
    """llm_synth's best of n per slot, then its usable runners-up: a teacher-inconsistent
    candidate never enters the reserve."""
    rng = np.random.default_rng(1)
    centroids = np.eye(3, 8, dtype=np.float32)
    slots = np.repeat([0, 1, 2], 4)
    vectors = normalised(centroids[slots] + rng.normal(scale=0.3, size=(12, 8)))
    probs = np.tile([0.1, 0.9], (12, 1))
    probs[5] = [0.8, 0.2]  # disputed by the teacher
    table = pa.table({"slot": pa.array(slots, pa.int32()),
                      "centroid": [centroids[s].tolist() for s in slots]})
    pool = ClassPool(np.arange(12), vectors, probs, 1, 0, table)
    settings = GenerateSection(max_similarity=0.999)
    chosen, _, reasons = slot_chooser(settings)(pool)
    ranked, scores, left = with_reserve(slot_chooser(settings), 6)(pool)
    assert ranked[:3] == chosen and len(ranked) == 9 and len(set(ranked)) == 9
    assert 5 not in ranked and left[5] == "teacher_inconsistent"
    assert set(ranked).isdisjoint(left) and len(ranked) + len(left) == 12
    left_spare = [i for i in range(12) if reasons.get(i) == "not_best_of_n"]
    expected = []
    while len(expected) < 6:  # round by round over the picks, the nearest runner-up left
        for pick in chosen:
            best = max(left_spare, key=lambda i: float(vectors[i] @ vectors[pick]))
            left_spare.remove(best)
            expected.append(best)
    assert ranked[3:] == expected
    assert [slots[i] for i in ranked[3:6]] == [slots[i] for i in chosen]  # own slot nearest
    assert scores[3] == pytest.approx(float(vectors[ranked[3]] @ vectors[chosen[0]]))
