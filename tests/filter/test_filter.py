"""The filter stage: every filter on planted cases; rows in = out + rejected after each."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from distill_core.artifacts.schemas import SELECTION_SCHEMA
from distill_core.config import FilterSection
from distill_core.filter import FilterContext, clean_corpus, filter_candidates
from distill_core.filter.base import FilterInput
from distill_core.filter.contamination import contamination_filter
from distill_core.filter.near_dup import near_dedup
from distill_core.filter.pipeline import run_filters
from distill_core.filter.quality import quality_filter
from distill_core.filter.semantic import semantic_dedup
from distill_core.filter.teacher_consistency import teacher_consistency


def _candidates(rows: list[tuple[str, int, str, str, int]]) -> pa.Table:
    return pa.Table.from_pylist([
        {"example_id": eid, "replicate": rep, "text": text, "text_pair": None, "label": label,
         "label_id": 0 if label == "neg" else 1, "parent_ids": [eid], "method": "kmeans",
         "run_id": "r", "seed": rep, "rank": rank, "score": 0.0, "weight": 1.0,
         "soft_label": None}
        for eid, rep, text, label, rank in rows], schema=SELECTION_SCHEMA)


def _context(table: pa.Table, **kwargs) -> FilterContext:
    return FilterContext(ids={e: i for i, e in enumerate(
        dict.fromkeys(table.column("example_id").to_pylist()))}, **kwargs)


def _input(texts: list[str], vectors: np.ndarray | None = None, **kwargs) -> FilterInput:
    n = len(texts)
    table = pa.table({"example_id": [f"id{i}" for i in range(n)], "text": texts,
                      "text_pair": pa.nulls(n, pa.string()), "label": ["pos"] * n,
                      "label_id": pa.array([1] * n, pa.int32())})
    return FilterInput(table=table, groups=np.zeros(n, dtype=np.int64), vectors=vectors, **kwargs)


def test_dedup_keeps_best_ranked_copy_and_budget_cuts_the_rest() -> None:
    table = _candidates([
        ("a", 0, "Great film", "pos", 1),
        ("b", 0, "great   FILM", "neg", 0),   # same normalised text, better rank: kept
        ("c", 0, "fine", "pos", 0),
        ("d", 0, "okay", "pos", 2),
        ("f", 0, "fair", "pos", 3),          # third pos row: over budget (2 per class)
        ("e", 1, "Great film", "pos", 0),    # another replicate: not a duplicate of "b"
    ])
    cfg = FilterSection.model_validate({"contamination": {"enabled": False}})
    result = filter_candidates(table, 2, cfg, _context(table))
    kept = {(r["replicate"], r["example_id"]) for r in result.kept.to_pylist()}
    assert kept == {(0, "b"), (0, "c"), (0, "d"), (1, "e")}
    rejects = {r["example_id"]: r for r in result.rejects.to_pylist()}
    assert rejects["a"]["reason"] == "exact_duplicate" and "b" in rejects["a"]["detail"]
    assert rejects["f"]["reason"] == "over_budget" and set(rejects) == {"a", "f"}
    assert result.counts["rows_in"] == result.counts["rows_out"] + result.counts["rows_rejected"]
    assert result.per_class == {"0": {"neg": 1, "pos": 2}, "1": {"pos": 1}}
    assert [f["filter"] for f in result.per_filter] == ["exact_dedup", "budget"]


def test_planted_near_duplicates_are_caught_and_distinct_pairs_kept() -> None:
    base = "the film is a sweeping and moving portrait of a family torn apart by war and grief"
    texts = [
        base,
        base.replace("grief", "grieff"),  # one typo: 1 of 15 shingles differs, Jaccard 0.88
        base + " .",                                       # trailing punctuation
        "a dull and lifeless comedy that never finds its rhythm or a single laugh at all",
        "a dull and lifeless comedy that never finds its rhythm or a single laugh at all !",
        "an entirely different sentence about cooking pasta with garlic and good olive oil",
    ]
    drops = near_dedup(_input(texts), shingle=3, num_perm=128, threshold=0.7, seed=1)
    assert {d.row for d in drops} == {1, 2, 4}
    assert all(d.reason == "near_duplicate" for d in drops)
    by_row = {d.row: d.detail for d in drops}
    assert "id0" in by_row[1] and "id3" in by_row[4]


def test_semantic_duplicates_keep_the_most_representative() -> None:
    rng = np.random.default_rng(0)
    centre = rng.normal(size=8)
    centre /= np.linalg.norm(centre)
    near = [centre + rng.normal(scale=s, size=8) for s in (0.01, 0.02, 0.03)]
    far = rng.normal(size=(3, 8))
    vectors = np.vstack(near + list(far))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    drops = semantic_dedup(_input([f"t{i}" for i in range(6)], vectors), epsilon=0.99,
                           cluster_size=100, seed=0)
    dropped = {d.row for d in drops}
    assert len(dropped & {0, 1, 2}) == 2 and not dropped & {3, 4, 5}


def test_semantic_duplicates_of_a_contaminated_row_keep_one_of_them() -> None:
    """Semantic dedup runs after contamination: when the most representative member of a set
    of duplicates copies an evaluation text, one other member stays (before, the others were
    dropped as its duplicates and it as contamination: the whole set lost)."""
    rng = np.random.default_rng(1)
    centre = rng.normal(size=8)
    vectors = np.vstack([centre, centre + rng.normal(scale=0.02, size=8),
                         centre + rng.normal(scale=0.03, size=8), rng.normal(size=(3, 8))])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = ["the evaluation sentence itself", "a paraphrase of it", "another paraphrase",
             "unrelated one", "unrelated two", "unrelated three"]
    cfg = FilterSection.model_validate({
        "exact_dedup": False, "semantic_dedup": {"enabled": True, "epsilon": 0.99},
        "contamination": {"embedding_threshold": None}})
    run = run_filters(_input(texts, vectors, eval_texts=[texts[0]], eval_vectors=vectors[:1]),
                      cfg)
    reasons = {d.row: d.reason for d in run.drops}
    assert reasons[0] == "contaminated_ngram"
    assert len({1, 2} - set(reasons)) == 1  # one paraphrase kept, the other its duplicate
    assert [r for r in reasons.values() if r == "semantic_duplicate"] == ["semantic_duplicate"]


def test_a_planted_copy_of_a_test_sentence_is_contamination() -> None:
    test_sentence = ("it 's a charming and often affecting journey that never loses sight of "
                     "its small heroes")
    texts = ["A Charming and often affecting journey that never loses sight of its small "
             "heroes , and more",                       # shares a 13-gram
             "it 's a charming and often affecting journey",  # short and not equal: kept
             "unrelated words about something else entirely and for a long time indeed yes",
             "the best film"]
    eval_texts = [test_sentence, "The best film"]
    drops = contamination_filter(_input(texts, eval_texts=eval_texts), 13, None)
    assert {d.row: d.reason for d in drops} == {0: "contaminated_ngram", 3: "contaminated_ngram"}
    vectors = np.eye(4)
    eval_vectors = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    drops = contamination_filter(
        _input(["x", "y", "z", "w"], vectors, eval_texts=["p", "q"], eval_vectors=eval_vectors),
        13, 0.95)
    assert {d.row: d.reason for d in drops} == {1: "contaminated_embedding",
                                                2: "contaminated_embedding"}


def test_teacher_consistency_and_quality() -> None:
    data = _input(["good", "bad", "meh"], label_prob=np.array([0.9, 0.2, 0.5]))
    assert [d.row for d in teacher_consistency(data, 0.5)] == [1]
    texts = ["ok", "one two three four five six", "<<<>>> 12345 ???", "fine words here"]
    drops = quality_filter(_input(texts), min_words=2, max_words=5, min_alpha_fraction=0.5)
    assert {d.row: d.reason for d in drops} == {0: "too_short", 1: "too_long",
                                                2: "mostly_non_text"}


@pytest.mark.parametrize("seed", [0, 1])
def test_rows_in_equal_out_plus_rejects_after_every_filter(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "film", "plot", "actor", "scene", "dull", "great", "!!", "123"]
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 9))) for _ in range(300)]
    vectors = rng.normal(size=(300, 6))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    data = _input(texts, vectors, label_prob=rng.uniform(size=300),
                  eval_texts=texts[:5], eval_vectors=vectors[:5])
    cfg = FilterSection.model_validate({
        "quality": {"enabled": True, "min_words": 2}, "near_dedup": {"enabled": True},
        "semantic_dedup": {"enabled": True, "epsilon": 0.95, "cluster_size": 50},
        "contamination": {"ngram": 3}, "teacher_consistency": {"enabled": True, "tau": 0.2}})
    run = run_filters(data, cfg)
    assert [f["filter"] for f in run.per_filter] == [
        "quality", "exact_dedup", "near_dedup", "contamination", "teacher_consistency",
        "semantic_dedup"]
    for step in run.per_filter:
        assert step["rows_in"] == step["rows_out"] + step["rows_rejected"], step["filter"]
    for step, following in zip(run.per_filter, run.per_filter[1:], strict=False):
        assert following["rows_in"] == step["rows_out"]
    assert run.per_filter[0]["rows_in"] == 300
    # This data trips every filter but near_dedup (exact dedup has taken its repeats first).
    rejecting = [f["filter"] for f in run.per_filter if f["rows_rejected"] > 0]
    assert set(rejecting) == {"quality", "exact_dedup", "semantic_dedup", "contamination",
                              "teacher_consistency"}
    dropped = [d.row for d in run.drops]
    assert len(dropped) == len(set(dropped))  # a row is rejected once
    assert sorted(dropped + run.kept.tolist()) == list(range(300))


def test_clean_corpus_accounts_for_every_training_row() -> None:
    n = 6
    train = pa.table({"example_id": [f"e{i}" for i in range(n)], "split": ["train"] * n,
                      "text": ["a b", "A  b", "c d", "e f", "g h", "a b c"],
                      "text_pair": pa.nulls(n, pa.string()), "label": ["x"] * n,
                      "label_id": pa.array([0] * n, pa.int32())})
    cfg = FilterSection.model_validate({"contamination": {"embedding_threshold": None}})
    result = clean_corpus(train, cfg, FilterContext(
        ids={f"e{i}": i for i in range(n)}, eval_texts=["g h"]))
    assert result.kept.column("example_id").to_pylist() == ["e0", "e2", "e3", "e5"]
    assert {r["example_id"]: r["reason"] for r in result.rejects.to_pylist()} == {
        "e1": "exact_duplicate", "e4": "contaminated_ngram"}
