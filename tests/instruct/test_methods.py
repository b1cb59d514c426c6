"""Rankings over a pool of real Alpaca prompts (MiniLM embeddings): budget, order, prefix."""

from __future__ import annotations

import numpy as np
import pytest

from distill_core.instruct.methods import (
    influence_ranking,
    kmeans_ranking,
    longest_ranking,
    quality_diversity_ranking,
    random_ranking,
    score_ranking,
)

BUDGET = 6


@pytest.fixture(scope="module")
def pool(encoder, alpaca_records) -> tuple[np.ndarray, np.ndarray]:
    """(prompt embeddings, a real per-row score: the response length in words)."""
    prompts = [f"{r['instruction']}\n\n{r['input']}".strip() for r in alpaca_records]
    embeddings = encoder.encode(prompts)
    scores = np.asarray([len(r["output"].split()) for r in alpaca_records], dtype=float)
    return embeddings, scores


def _distinct_prefix(full, short, budget: int = BUDGET) -> None:
    assert len(set(full.indices.tolist())) == len(full.indices)
    assert len(short.indices) == budget
    assert full.indices[:budget].tolist() == short.indices.tolist()


def test_random_is_seeded_and_extends_its_own_order(pool) -> None:
    embeddings, _ = pool
    short = random_ranking(len(embeddings), BUDGET, seed=3)
    full = random_ranking(len(embeddings), BUDGET, seed=3, ranked=30)
    _distinct_prefix(full, short)
    assert random_ranking(len(embeddings), BUDGET, seed=4).indices.tolist() != \
        short.indices.tolist()
    assert len(random_ranking(5, BUDGET, seed=0).indices) == 5  # a pool under the budget


def test_kmeans_picks_one_prototype_per_cluster(pool) -> None:
    embeddings, _ = pool
    short = kmeans_ranking(embeddings, BUDGET, seed=0)
    full = kmeans_ranking(embeddings, BUDGET, seed=0, ranked=20)
    _distinct_prefix(full, short, BUDGET)
    assert len(full.indices) == 20
    # One pick per cluster of the same seeded fit, each the member nearest its centroid.
    from sklearn.cluster import KMeans

    def assert_prototypes_of(fit, ranking) -> None:
        clusters = fit.labels_[ranking.indices]
        assert sorted(clusters.tolist()) == list(range(BUDGET))
        for row, cluster in zip(ranking.indices, clusters, strict=True):
            members = np.flatnonzero(fit.labels_ == cluster)
            distances = np.linalg.norm(embeddings[members] - fit.cluster_centers_[cluster],
                                       axis=1)
            assert members[int(np.argmin(distances))] == row

    assert_prototypes_of(KMeans(n_clusters=BUDGET, n_init=3, random_state=0).fit(embeddings),
                         short)
    # The kmeans options reach the fit: one Lloyd iteration from one k-means++ start.
    quick = kmeans_ranking(embeddings, BUDGET, seed=0, n_init=1, max_iter=1)
    assert_prototypes_of(KMeans(n_clusters=BUDGET, n_init=1, max_iter=1,
                                random_state=0).fit(embeddings), quick)
    assert not np.allclose(quick.scores, short.scores)  # another fit (same picks here)


def test_score_ranking_orders_by_score_and_demotes_above_the_cap(pool) -> None:
    _, scores = pool
    ranking = score_ranking(scores, BUDGET, ranked=len(scores))
    assert (np.diff(ranking.scores) <= 0).all()
    capped = score_ranking(scores, BUDGET, ranked=len(scores), max_score=50)
    below = int((scores < 50).sum())
    assert (capped.scores[:below] < 50).all() and (capped.scores[below:] >= 50).all()
    with_nan = scores.copy()
    with_nan[int(np.argmax(scores))] = np.nan
    assert score_ranking(with_nan, 1, ranked=len(scores)).indices[-1] == int(np.argmax(scores))


def test_longest_ranks_by_response_characters_ties_by_row(alpaca_records) -> None:
    responses = [r["output"] for r in alpaca_records]
    ranking = longest_ranking(responses, BUDGET, ranked=len(responses))
    lengths = [len(responses[i]) for i in ranking.indices]
    assert lengths == sorted((len(r) for r in responses), reverse=True)
    assert ranking.scores.tolist() == lengths
    tied = longest_ranking(["ab", "xyz", "cd", "q"], 4)
    assert tied.indices.tolist() == [1, 0, 2, 3]  # equal lengths keep row order
    _distinct_prefix(ranking, longest_ranking(responses, BUDGET))


def test_quality_diversity_caps_cosine_to_chosen_rows(pool) -> None:
    embeddings, scores = pool
    # A copy of the best row (same prompt embedding, a slightly lower score) must be skipped.
    top = int(np.argmax(scores))
    embeddings = np.vstack([embeddings, embeddings[top]])
    scores = np.append(scores, scores[top] - 0.5)
    ranking = quality_diversity_ranking(scores, embeddings, BUDGET, max_cosine=0.6, ranked=20)
    assert ranking.indices[0] == top and len(embeddings) - 1 not in ranking.indices[:BUDGET]
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    chosen = unit[ranking.indices[:BUDGET]]
    cosine = chosen @ chosen.T
    assert (cosine[np.triu_indices(BUDGET, 1)] < 0.6).all()
    assert len(set(ranking.indices.tolist())) == 20
    # No cap: plain score order.
    loose = quality_diversity_ranking(scores, embeddings, BUDGET, max_cosine=1.1)
    assert loose.indices.tolist() == score_ranking(scores, BUDGET).indices.tolist()
    # A cap no pair passes still returns `budget` rows, then in score order.
    tight = quality_diversity_ranking(scores, embeddings, BUDGET, max_cosine=-1.0)
    assert tight.indices.tolist() == score_ranking(scores, BUDGET).indices.tolist()


def test_influence_ranks_by_cosine_to_the_target_mean(pool) -> None:
    embeddings, _ = pool
    target = np.array([0, 1, 2])
    ranking = influence_ranking(embeddings, BUDGET, seed=0, target=target, ranked=len(embeddings))
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    direction = unit[target].mean(axis=0)
    expected = unit @ (direction / np.linalg.norm(direction))
    assert ranking.scores == pytest.approx(expected[ranking.indices], abs=1e-6)
    assert (np.diff(ranking.scores) <= 1e-12).all()
    drawn = influence_ranking(embeddings, BUDGET, seed=0, target_size=8)
    assert drawn.indices.tolist() == influence_ranking(embeddings, BUDGET, seed=0,
                                                       target_size=8).indices.tolist()
    other = influence_ranking(embeddings, BUDGET, seed=1, target_size=8)
    assert other.indices.tolist() != drawn.indices.tolist()  # the seed draws the target
    with pytest.raises(ValueError, match="cancel out"):
        influence_ranking(np.vstack([embeddings[:1], -embeddings[:1]]), 1, seed=0,
                          target=np.array([0, 1]))
