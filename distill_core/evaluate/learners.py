"""The learners the benchmark trains on a distilled set, behind one function.

- `linear_probe`: logistic regression on the frozen encoder embeddings
  (`[u, v, |u-v|, u*v]` for pairs); soft labels train the soft-label probe.
- `finetune`: a pretrained encoder with a fresh head under the published
  protocol (AdamW, lr 1e-4, batch 64, 200 steps, cosine, warm-up 0.5, weight
  decay 0.01); pairs use the tokenizer's pair input.
- `scratch`: a small BERT-style encoder with random weights, from the config,
  same loop: does a set chosen with one model's features transfer?
Soft labels, when the set carries them, are trained with the distillation loss
(cross-entropy to the distribution, i.e. KL plus a constant).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import accuracy_score, f1_score

from distill_core.evaluate.linear_probe import ProbeScore, linear_probe
from distill_core.evaluate.soft_probe import soft_label_probe

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


class LearnerSpec(BaseModel):
    """One learner of the benchmark grid, and the part of the grid it scores."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["linear_probe", "finetune", "scratch"]
    name: str | None = Field(default=None, description="Label in tables; default: the kind.")
    model: str = Field(default=DEFAULT_ENCODER, description="finetune: the pretrained encoder "
                       "(hub name or folder); scratch: whose tokenizer to use.")
    steps: int = Field(default=200, gt=0)
    batch_size: int = Field(default=64, gt=0)
    lr: float | None = Field(default=None, gt=0, description="Default 1e-4 (finetune), "
                             "5e-4 (scratch).")
    warmup_ratio: float = Field(default=0.5, ge=0, le=1)
    weight_decay: float = Field(default=0.01, ge=0)
    max_length: int = Field(default=128, gt=0)
    layers: int = Field(default=2, gt=0, description="scratch: transformer layers.")
    hidden: int = Field(default=128, gt=0, description="scratch: hidden size.")
    heads: int = Field(default=4, gt=0, description="scratch: attention heads.")
    intermediate: int = Field(default=512, gt=0, description="scratch: feed-forward size.")
    C: float = Field(default=1.0, gt=0, description="linear_probe: inverse L2 strength.")
    max_iter: int = Field(default=2000, gt=0, description="linear_probe: L-BFGS iterations.")
    temperature: float = Field(default=1.0, gt=0, description="Soft-label probe temperature.")
    seeds: list[int] | None = Field(default=None, description="Learner seeds; default: the "
                                    "benchmark's seeds.")
    datasets: list[str] | None = Field(default=None, description="Only these datasets.")
    methods: list[str] | None = Field(default=None, description="Only these methods.")
    budgets: list[int] | None = Field(default=None, description="Only these budgets.")
    soft: bool = Field(default=True, description="Also train on soft labels when the "
                       "benchmark's soft_labels is on.")
    full_seeds: int = Field(default=1, ge=0, description="Seeds trained on the full training "
                            "split (its accuracy is the retention and recovery reference).")

    def label(self) -> str:
        return self.name or self.kind

    def identity(self) -> dict[str, Any]:
        """The fields that change a score (not which cells it covers)."""
        return self.model_dump(mode="json", exclude={"name", "seeds", "datasets", "methods",
                                                     "budgets", "full_seeds", "soft"})

    def covers(self, dataset: str, method: str, budget: int) -> bool:
        return ((self.datasets is None or dataset in self.datasets)
                and (self.methods is None or method in self.methods)
                and (self.budgets is None or budget in self.budgets))


@dataclass
class LearnerData:
    """Texts (and pair texts), frozen features and label ids of one side of a cell."""

    texts: list[str]
    pairs: list[str] | None
    x: np.ndarray
    y: np.ndarray


def _scores(eval_y: np.ndarray, predicted: np.ndarray, labels: list[int], n_train: int,
            start: float, note: str = "") -> ProbeScore:
    return ProbeScore(
        accuracy=float(accuracy_score(eval_y, predicted)),
        macro_f1=float(f1_score(eval_y, predicted, labels=labels, average="macro",
                                zero_division=0)),
        n_train=n_train, wall_time_s=round(time.perf_counter() - start, 3), converged=True,
        note=note)


def _train_network(spec: LearnerSpec, train: LearnerData, evaluation: LearnerData,
                   labels: list[int], seed: int, targets: np.ndarray,
                   weights: np.ndarray | None) -> ProbeScore:
    from distill_core.models.finetune import (
        FinetuneSettings,
        load_pretrained,
        train_classifier,
    )
    from distill_core.models.scratch import ScratchArchitecture, scratch_encoder

    start = time.perf_counter()
    default_lr = 1e-4 if spec.kind == "finetune" else 5e-4
    settings = FinetuneSettings(steps=spec.steps, batch_size=spec.batch_size,
                                lr=spec.lr or default_lr, warmup_ratio=spec.warmup_ratio,
                                weight_decay=spec.weight_decay, max_length=spec.max_length,
                                seed=seed)
    if spec.kind == "finetune":
        encoder, tokenizer = load_pretrained(spec.model)
    else:
        encoder, tokenizer = scratch_encoder(
            spec.model, ScratchArchitecture(spec.layers, spec.hidden, spec.heads,
                                            spec.intermediate), spec.max_length, seed)
    trained = train_classifier(encoder, tokenizer, train.texts, train.pairs, targets,
                               len(labels), settings, sample_weight=weights)
    logits, _ = trained.predict(evaluation.texts, evaluation.pairs)
    return _scores(evaluation.y, logits.argmax(axis=1), labels, len(train.y), start,
                   f"final training loss {trained.losses[-1]:.4f}")


def score_learner(spec: LearnerSpec, train: LearnerData, evaluation: LearnerData,
                  labels: list[int], seed: int, soft_targets: np.ndarray | None = None,
                  weights: np.ndarray | None = None) -> ProbeScore:
    """Train `spec` on `train` (hard labels, or `soft_targets` [n, C]) and score `evaluation`."""
    if spec.kind == "linear_probe":
        if soft_targets is not None:
            return soft_label_probe(train.x, soft_targets, evaluation.x, evaluation.y, labels,
                                    spec.C, spec.temperature, sample_weight=weights)
        return linear_probe(train.x, train.y, evaluation.x, evaluation.y, labels, spec.C,
                            spec.max_iter, sample_weight=weights)
    targets = soft_targets if soft_targets is not None else train.y
    return _train_network(spec, train, evaluation, labels, seed, targets, weights)
