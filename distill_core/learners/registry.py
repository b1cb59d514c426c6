"""The one list of learner kinds: name, what each trains, where its training code lives.

A learner trains a fresh model on a distilled set (or a baseline) and scores it
on the evaluation split, the same in a run's evaluate stage and in the
benchmark. `LearnerSpec.kind` names one of these; the training code is imported
on first use, so validating a config that names a learner stays cheap (no
torch, no scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from distill_core.evaluate.linear_probe import ProbeScore
    from distill_core.learners.data import LearnerData, TrainingRows
    from distill_core.learners.spec import LearnerSpec


class TrainFn(Protocol):
    """Train under `spec` on `rows` (hard labels, or `rows.soft` targets), score `evaluation`."""

    def __call__(self, spec: LearnerSpec, rows: TrainingRows, evaluation: LearnerData,
                 labels: list[int], seed: int) -> ProbeScore: ...


@dataclass(frozen=True)
class Learner:
    """One learner kind.

    Attributes:
        name: the value of `kind` in a learner's settings.
        summary: one line for the config's field description and the docs.
        implementation: `module:function` of its `TrainFn`, imported on first use.
        synthetic_only: it trains on a learned run's synthetic tensors, so it scores only a
            learned method's distilled sets (no text baselines).
    """

    name: str
    summary: str
    implementation: str
    synthetic_only: bool = False

    def train_fn(self) -> TrainFn:
        """The training function (imported on first use)."""
        module, _, attr = self.implementation.partition(":")
        return getattr(import_module(module), attr)


LEARNERS: tuple[Learner, ...] = (
    Learner("linear_probe", "logistic regression on the frozen encoder features "
            "([u, v, |u-v|, u*v] for pairs); soft labels train the soft-label probe",
            "distill_core.learners.probe:train_linear_probe"),
    Learner("finetune", "a pretrained encoder (`model`) with a fresh head under the published "
            "protocol (AdamW, lr 1e-4, batch 64, 200 steps, cosine, warm-up 0.5, weight decay "
            "0.01); pairs use the tokenizer's pair input",
            "distill_core.learners.network:train_finetune"),
    Learner("scratch", "a small BERT-style encoder with random weights (`layers`, `hidden`, "
            "`heads`, `intermediate`; `model` names the tokenizer), same loop, lr 5e-4",
            "distill_core.learners.network:train_scratch"),
    Learner("embeds_finetune", "a learned method's synthetic embeddings, soft and attention "
            "labels trained into the encoder under the distillation's inner protocol (same "
            "steps, learned lr); learned methods only, distilled sets only",
            "distill_core.learners.embeds:train_embeds_finetune", synthetic_only=True),
)
_BY_NAME = {learner.name: learner for learner in LEARNERS}


def learner_kinds() -> list[str]:
    """The registered kinds, in registry order."""
    return [learner.name for learner in LEARNERS]


def get_learner(kind: str) -> Learner:
    if kind not in _BY_NAME:
        raise KeyError(f"unknown learner kind {kind!r}; known: {', '.join(_BY_NAME)}")
    return _BY_NAME[kind]


def score_learner(spec: LearnerSpec, rows: TrainingRows, evaluation: LearnerData,
                  labels: list[int], seed: int) -> ProbeScore:
    """Train the learner `spec` describes on `rows` and score it on `evaluation`."""
    return get_learner(spec.kind).train_fn()(spec, rows, evaluation, labels, seed)
