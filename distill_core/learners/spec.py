"""`LearnerSpec`: the one settings model of a learner, in a run's `evaluate.learners` and in
the benchmark's `learners`.

The training numbers default to the shared recipe of `distill_core.models`
(`FinetuneSettings`, `ScratchArchitecture`), so the teacher, the learners and
the docs cannot drift apart. The grid fields (`seeds`, `datasets`, `methods`,
`budgets`, `full_seeds`) only choose which benchmark cells a learner scores.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from distill_core.learners.registry import LEARNERS, learner_kinds
from distill_core.models.finetune import FinetuneSettings
from distill_core.models.scratch import ScratchArchitecture

# A positive inverse L2 strength, or "cv": chosen per fit by `evaluate/probe_c.py`'s rule.
ProbeC = Annotated[float, Field(gt=0)] | Literal["cv"]

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
GRID_FIELDS = frozenset({"seeds", "datasets", "methods", "budgets", "full_seeds"})

LearnerKind = Literal[tuple(learner_kinds())]  # type: ignore[valid-type]


class LearnerSpec(BaseModel):
    """One learner: its kind, its training settings, and the part of a benchmark grid it scores."""

    model_config = ConfigDict(extra="forbid")

    kind: LearnerKind = Field(description="; ".join(f"{learner.name}: {learner.summary}"
                                                    for learner in LEARNERS))
    name: str | None = Field(default=None, description="Label in tables; default: the kind.")
    model: str = Field(default=DEFAULT_ENCODER, description="finetune: the pretrained encoder "
                       "(hub name or folder); scratch: whose tokenizer to use.")
    steps: int = Field(default=FinetuneSettings.steps, gt=0)
    batch_size: int = Field(default=FinetuneSettings.batch_size, gt=0)
    lr: float | None = Field(default=None, gt=0, description="Default 1e-4 (finetune), "
                             "5e-4 (scratch).")
    warmup_ratio: float = Field(default=FinetuneSettings.warmup_ratio, ge=0, le=1)
    weight_decay: float = Field(default=FinetuneSettings.weight_decay, ge=0)
    max_length: int = Field(default=FinetuneSettings.max_length, gt=0)
    layers: int = Field(default=ScratchArchitecture.layers, gt=0,
                        description="scratch: transformer layers.")
    hidden: int = Field(default=ScratchArchitecture.hidden, gt=0,
                        description="scratch: hidden size.")
    heads: int = Field(default=ScratchArchitecture.heads, gt=0,
                       description="scratch: attention heads.")
    intermediate: int = Field(default=ScratchArchitecture.intermediate, gt=0,
                              description="scratch: feed-forward size.")
    C: ProbeC = Field(default=1.0, description="linear_probe: inverse L2 strength, or `cv` "
                      "(chosen on the probe's training rows by evaluate/probe_c.py's rule).")
    max_iter: int = Field(default=2000, gt=0, description="linear_probe: L-BFGS iterations.")
    temperature: float = Field(default=1.0, gt=0, description="Soft-label probe temperature.")
    seeds: list[int] | None = Field(default=None, description="Learner seeds; default: the "
                                    "benchmark's seeds.")
    datasets: list[str] | None = Field(default=None, description="Only these datasets.")
    methods: list[str] | None = Field(default=None, description="Only these methods.")
    budgets: list[int] | None = Field(default=None, description="Only these budgets.")
    soft: bool = Field(default=True, description="Also train on soft labels when the "
                       "distilled sets carry them.")
    full_seeds: int = Field(default=1, ge=0, description="Seeds trained on the full training "
                            "split (its accuracy is the retention and recovery reference).")

    def label(self) -> str:
        return self.name or self.kind

    def identity(self) -> dict[str, Any]:
        """The fields that change a score (not which cells it covers)."""
        return self.model_dump(mode="json", exclude={"name", "soft", *GRID_FIELDS})

    def covers(self, dataset: str, method: str, budget: int) -> bool:
        return ((self.datasets is None or dataset in self.datasets)
                and (self.methods is None or method in self.methods)
                and (self.budgets is None or budget in self.budgets))

    def finetune_settings(self, seed: int, default_lr: float) -> FinetuneSettings:
        """The training loop's settings for `seed` (`lr` unset: the kind's `default_lr`)."""
        return FinetuneSettings(steps=self.steps, batch_size=self.batch_size,
                                lr=self.lr or default_lr, warmup_ratio=self.warmup_ratio,
                                weight_decay=self.weight_decay, max_length=self.max_length,
                                seed=seed)

    def architecture(self) -> ScratchArchitecture:
        """The from-scratch encoder's shape."""
        return ScratchArchitecture(self.layers, self.hidden, self.heads, self.intermediate)


def _entry_tag(value: Any) -> str:
    return "kind" if isinstance(value, str) else "spec"


# An item of a run's `evaluate.learners`: a kind's name, or the full settings mapping.
LearnerEntry = Annotated[
    Annotated[LearnerKind, Tag("kind")] | Annotated[LearnerSpec, Tag("spec")],
    Discriminator(_entry_tag),
]


def as_spec(entry: str | LearnerSpec) -> LearnerSpec:
    """A `LearnerEntry` as settings (a bare name: the kind with its defaults)."""
    return entry if isinstance(entry, LearnerSpec) else LearnerSpec(kind=entry)
