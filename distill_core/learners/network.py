"""The `finetune` and `scratch` learners: a transformer encoder with a fresh head.

Both train with the shared loop of `distill_core.models.finetune` (the
published protocol: AdamW, cosine schedule with warm-up, weight decay, batches
drawn by `seed`) on the rows' texts (pairs through the tokenizer's pair input),
hard labels with cross-entropy or soft targets with the cross-entropy to the
distribution, weighted per row. They differ in where the encoder comes from and
in the default learning rate.
"""

from __future__ import annotations

import time
from typing import Any

from sklearn.metrics import accuracy_score, f1_score

from distill_core.evaluate.linear_probe import ProbeScore
from distill_core.learners.data import LearnerData, TrainingRows
from distill_core.learners.spec import LearnerSpec
from distill_core.models.finetune import (
    FinetuneSettings,
    LabelledTexts,
    load_pretrained,
    train_classifier,
)
from distill_core.models.scratch import scratch_encoder

FINETUNE_LR = 1e-4
SCRATCH_LR = 5e-4


def train_finetune(spec: LearnerSpec, rows: TrainingRows, evaluation: LearnerData,
                   labels: list[int], seed: int) -> ProbeScore:
    """Fine-tune the pretrained encoder `spec.model` (default lr 1e-4)."""
    start = time.perf_counter()
    encoder, tokenizer = load_pretrained(spec.model)
    return _train(encoder, tokenizer, spec.finetune_settings(seed, FINETUNE_LR), rows,
                  evaluation, labels, start)


def train_scratch(spec: LearnerSpec, rows: TrainingRows, evaluation: LearnerData,
                  labels: list[int], seed: int) -> ProbeScore:
    """Train a randomly initialised encoder of `spec`'s shape (weights by `seed`; lr 5e-4)."""
    start = time.perf_counter()
    encoder, tokenizer = scratch_encoder(spec.model, spec.architecture(), spec.max_length, seed)
    return _train(encoder, tokenizer, spec.finetune_settings(seed, SCRATCH_LR), rows,
                  evaluation, labels, start)


def _train(encoder: Any, tokenizer: Any, settings: FinetuneSettings, rows: TrainingRows,
           evaluation: LearnerData, labels: list[int], start: float) -> ProbeScore:
    targets = rows.soft if rows.soft is not None else rows.data.y
    data = LabelledTexts(rows.data.texts, rows.data.pairs, targets, rows.weights)
    trained = train_classifier(encoder, tokenizer, data, len(labels), settings)
    logits, _ = trained.predict(evaluation.texts, evaluation.pairs)
    predicted = logits.argmax(axis=1)
    return ProbeScore(
        accuracy=float(accuracy_score(evaluation.y, predicted)),
        macro_f1=float(f1_score(evaluation.y, predicted, labels=labels, average="macro",
                                zero_division=0)),
        n_train=len(rows.data.y), wall_time_s=round(time.perf_counter() - start, 3),
        converged=True, note=f"final training loss {trained.losses[-1]:.4f}")
