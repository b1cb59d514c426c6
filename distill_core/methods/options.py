"""Typed options of each distillation method: one pydantic model per method.

They sit under the method's own key in the config (`synthesize: {method: kmeans,
kmeans: {n_init: 3}}`), unknown keys are errors, and only the chosen method's
options enter the run id. Kept free of heavy imports: the config loads them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class MethodOptions(BaseModel):
    """Base of every method's options (no options: an empty mapping)."""

    model_config = ConfigDict(extra="forbid")

    def params(self) -> dict[str, Any]:
        """The keyword arguments of the method's function: every option, including the ones
        kept out of the run id (`exclude=True`: how it runs, not what it computes)."""
        return {**self.model_dump(), **{name: getattr(self, name)
                                        for name, spec in type(self).model_fields.items()
                                        if spec.exclude}}


class KmeansOptions(MethodOptions):
    n_init: int = Field(default=3, ge=1, description="k-means++ restarts per class.")
    max_iter: int = Field(default=300, ge=1, description="Lloyd iterations per restart.")
    threads: int | None = Field(
        default=None, ge=1, exclude=True,
        description="Threads for k-means (None: the cores this process may use). Not part of "
                    "the run id: the clustering is the same for any thread count.")


class El2nOptions(MethodOptions):
    prune_hardest: float = Field(default=0.1, ge=0, lt=1,
                                 description="Fraction of hardest rows dropped first.")


class GradmatchOptions(MethodOptions):
    keep_weights: bool = Field(default=False, description="Keep the matching weights as "
                               "training weights.")
    at: Literal["teacher", "init"] = Field(
        default="init", description="Gradients at initialisation (zero weights; best on SST-2, "
        "see benchmarks/RESULTS.md) or at the trained teacher probe.")


class LlmSynthOptions(MethodOptions):
    shots: int = Field(default=4, ge=1, description="Real examples per prompt (the slot's "
                       "most representative rows).")
    per_answer: int = Field(default=3, ge=1, description="New examples asked per answer.")
    samples_per_slot: int = Field(default=3, ge=1, description="Answers sampled per slot; the "
                                  "best candidate of all wins (best of n).")


class DilmOptions(MethodOptions):
    train_steps: int = Field(default=150, ge=1, description="Generator optimiser steps.")
    train_batch_size: int = Field(default=16, ge=1, description="Sentences per step.")
    train_lr: float = Field(default=5e-4, gt=0, description="AdamW learning rate.")
    train_max_length: int = Field(default=64, ge=8, description="Tokens per sentence.")
    lora_r: int = Field(default=16, ge=0, description="LoRA rank (peft) on every linear layer; "
                        "0 fine-tunes all weights.")
    lora_alpha: int = Field(default=32, ge=1, description="LoRA scaling numerator.")
    candidates_per_class: int = Field(default=100, ge=1, description="Samples per class and "
                                      "replicate before selection.")
    grad_rank: bool = Field(
        default=False, description="Within each k-means cluster, pick the candidate whose "
        "classifier-layer gradient best matches the real class's mean gradient, instead of "
        "the one nearest the centroid.")
    grad_rank_pool: int = Field(default=5, ge=1, description="grad_rank: the cluster's members "
                                "nearest its centroid that compete.")
