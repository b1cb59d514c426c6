"""Synthetic sets started from a selector's real rows (k-means, random, herding) on 4-class
AG News, and the learned benchmark's cached scorer, on the real data slice and a tiny
encoder: one row per class of its own class, the embeddings exactly those rows' tokens,
herding's row the one nearest its class mean, and the cached score equal to `accuracy`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.bench_learned import Scorer, split_rows
from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.learned import (
    FunctionalLearner,
    InnerConfig,
    RealData,
    accuracy,
    embeds_finetune,
    prototypes,
)


@pytest.fixture()
def ag_news(slice_dir: Path, tokenizer, tiny_encoder) -> dict:
    spec = resolve_dataset("ag_news")
    corpus = ingest_dataset(spec, slice_dir).corpus
    train, evaluation = split_rows(corpus, "train"), split_rows(corpus, "eval")
    learner = FunctionalLearner(tiny_encoder, n_classes=len(spec.label_names))
    real = RealData.from_texts(tokenizer, train["texts"], train["labels"], train["ids"],
                               max_length=32)
    features = learner.pooled(real.attention_mask, input_ids=real.input_ids).numpy()
    return {"train": train, "eval": evaluation, "learner": learner, "features": features}


def _initial(data: dict, tokenizer, init: str, seed: int = 0):
    train, learner = data["train"], data["learner"]
    return prototypes.from_real(data["features"], train["labels"], train["texts"], train["ids"],
                                tokenizer, learner.word_embeddings, n_classes=4, per_class=1,
                                seq_len=16, seed=seed, lr=1.0, init=init)


def test_selector_inits_pick_real_rows_of_each_class(ag_news, tokenizer):
    train = ag_news["train"]
    assert sorted(set(train["labels"].tolist())) == [0, 1, 2, 3]
    assert not set(train["ids"]) & set(ag_news["eval"]["ids"])  # the test split, not train
    row_of = {example_id: i for i, example_id in enumerate(train["ids"])}
    table = ag_news["learner"].word_embeddings
    picked = {}
    for init in ("kmeans", "random", "herding"):
        synthetic = _initial(ag_news, tokenizer, init)
        rows = [row_of[lineage[0]] for lineage in synthetic.parent_ids]
        assert synthetic.labels.tolist() == [0, 1, 2, 3]
        assert train["labels"][rows].tolist() == [0, 1, 2, 3]
        assert synthetic.meta["init"] == init
        tokens = tokenizer([train["texts"][i] for i in rows], padding="max_length",
                           truncation=True, max_length=16, return_tensors="pt")["input_ids"]
        assert torch.equal(synthetic.embeds, table[tokens])
        picked[init] = rows
    features = ag_news["features"].astype(np.float64)
    for label, row in enumerate(picked["herding"]):
        members = np.flatnonzero(train["labels"] == label)
        mean = features[members].mean(axis=0)
        nearest = members[np.argmin(((features[members] - mean) ** 2).sum(1))]
        assert row == nearest
    other_seed = [row_of[lin[0]] for lin in _initial(ag_news, tokenizer, "random", 1).parent_ids]
    assert other_seed != picked["random"]
    with pytest.raises(ValueError, match="gradmatch"):
        _initial(ag_news, tokenizer, "gradmatch")


def test_cached_scorer_equals_accuracy(ag_news, tokenizer):
    learner, evaluation = ag_news["learner"], ag_news["eval"]
    rows = RealData.from_texts(tokenizer, evaluation["texts"], evaluation["labels"],
                               evaluation["ids"], max_length=32)
    scorer = Scorer(learner, rows)
    params = embeds_finetune(learner, _initial(ag_news, tokenizer, "kmeans"),
                             InnerConfig(steps=1, head_init="zero"), 0)
    assert scorer(params) == accuracy(learner, params, rows)
    assert scorer._pooled is not None  # the encoder did not move: the cached path ran
    moved = dict(params)
    for name in [n for n in moved if n.startswith("encoder.") and n.endswith("dense.weight")]:
        generator = torch.Generator().manual_seed(len(name))
        moved[name] = torch.randn(moved[name].shape, generator=generator)
    expected = accuracy(learner, moved, rows)
    assert expected != scorer(params)  # so the cached path would have given a wrong score
    assert scorer(moved) == expected
