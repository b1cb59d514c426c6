"""The benchmark's learners on real SST-2 rows: each learns, each is reproducible by seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.learners import LearnerData, LearnerSpec, TrainingRows, score_learner


@pytest.fixture(scope="module")
def sst2_sides(slice_dir: Path, encoder) -> tuple[LearnerData, LearnerData]:
    corpus = ingest_dataset(resolve_dataset("sst2"), slice_dir).corpus

    def side(split: str, limit: int) -> LearnerData:
        table = corpus.filter(pc.equal(corpus.column("split"), split)).slice(0, limit)
        texts = table.column("text").to_pylist()
        return LearnerData(texts=texts, pairs=None, x=encoder.encode(texts, 64),
                           y=table.column("label_id").to_numpy())

    return side("train", 48), side("eval", 80)


def test_linear_probe_learner_matches_its_reference_on_real_embeddings(sst2_sides) -> None:
    from sklearn.linear_model import LogisticRegression

    train, evaluation = sst2_sides
    reference = LogisticRegression(C=1.0, max_iter=2000).fit(train.x, train.y)
    expected = float((reference.predict(evaluation.x) == evaluation.y).mean())
    score = score_learner(LearnerSpec(kind="linear_probe"), TrainingRows(train), evaluation,
                          [0, 1], seed=0)
    assert score.accuracy == pytest.approx(expected)
    assert score.accuracy > 0.6


def test_finetune_learner_memorises_its_set_and_beats_chance(
        sst2_sides, monkeypatch: pytest.MonkeyPatch) -> None:
    from distill_core.learners import network

    train, evaluation = sst2_sides
    spec = LearnerSpec(kind="finetune", steps=25, batch_size=16, max_length=64)
    trained = []  # the fitted classifier, kept to read its own training set back (one fit)
    train_classifier = network.train_classifier

    def keep(*args, **kwargs):
        trained.append(train_classifier(*args, **kwargs))
        return trained[-1]

    monkeypatch.setattr(network, "train_classifier", keep)
    on_eval = score_learner(spec, TrainingRows(train), evaluation, [0, 1], seed=0)
    assert on_eval.accuracy > 0.6 and on_eval.n_train == 48
    logits, _ = trained[0].predict(train.texts, train.pairs)
    on_train = float((logits.argmax(axis=1) == train.y).mean())
    assert on_train >= 0.95  # 25 steps at lr 1e-4 fit 48 sentences


def test_soft_labels_train_the_network_with_the_distillation_loss(sst2_sides) -> None:
    train, evaluation = sst2_sides
    spec = LearnerSpec(kind="scratch", steps=60, batch_size=16, lr=1e-3, max_length=48)
    # Soft targets that put all mass on the opposite class: a learner that used them must
    # predict the flipped labels on its own training set.
    flipped = np.eye(2)[1 - train.y]
    hard = score_learner(spec, TrainingRows(train), train, [0, 1], seed=0)
    soft = score_learner(spec, TrainingRows(train, soft=flipped), train, [0, 1], seed=0)
    assert hard.accuracy >= 0.9
    assert soft.accuracy <= 0.1


def test_scratch_learner_is_reproducible_by_seed(sst2_sides) -> None:
    train, evaluation = sst2_sides
    spec = LearnerSpec(kind="scratch", steps=10, batch_size=16, max_length=48)
    first = score_learner(spec, TrainingRows(train), evaluation, [0, 1], seed=3)
    again = score_learner(spec, TrainingRows(train), evaluation, [0, 1], seed=3)
    assert (first.accuracy, first.note) == (again.accuracy, again.note)
    other = score_learner(spec, TrainingRows(train), evaluation, [0, 1], seed=4)
    assert other.note != first.note  # another seed: other weights, another final loss
