"""The run config's instruction parts: where the rows come from and how the decoders run.

`InstructionData` is `data.instruction` (a preset, or a training file with its
column map and either an evaluation file or a seeded holdout); `InstructSection`
is the config's `instruct` section: the reference decoder behind the `ifd`,
`deita` and `less` signals, the `sft_lora` learner of the evaluate stage, and
the fixed sample of the evaluation split it is scored on. Kept free of heavy
imports: the config loads them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from distill_core.instruct.ingest import (
    ALPACA_COLUMNS,
    GSM8K_COLUMNS,
    Holdout,
    InstructionSource,
)
from distill_core.instruct.sft import SftOptions

PRESETS: dict[str, tuple[InstructionSource, InstructionSource | None]] = {
    "alpaca_subset": (InstructionSource(path="alpaca_subset/alpaca_5000.json",
                                        **ALPACA_COLUMNS), None),
    "gsm8k": (InstructionSource(path="gsm8k/train.jsonl", **GSM8K_COLUMNS),
              InstructionSource(path="gsm8k/test.jsonl", **GSM8K_COLUMNS)),
}


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InstructionData(_Settings):
    """Prompt/response rows: a preset or a mapped file, and the evaluation split."""

    preset: Literal["alpaca_subset", "gsm8k"] | None = Field(
        default=None, description="alpaca_subset (Alpaca JSON; evaluation split: a seeded "
        "holdout) or gsm8k (train.jsonl; evaluation split: test.jsonl), read from the data "
        "folder. Unset: give `train`.")
    train: InstructionSource | None = Field(
        default=None, description="Training file and its columns (instruction, optional "
        "input, response).")
    eval: InstructionSource | None = Field(
        default=None, description="Evaluation file (kept as given); or use `holdout`.")
    holdout: Holdout | None = Field(
        default=None, description="A seeded fraction of the training file held out as the "
        "evaluation split (never in the selection pool). Default for alpaca_subset: 10 %, "
        "seed 0.")

    @model_validator(mode="after")
    def _one_source(self) -> InstructionData:
        if (self.preset is None) == (self.train is None):
            raise ValueError("data.instruction: give a `preset` (alpaca_subset, gsm8k) or a "
                             "`train` file, not both")
        if self.train is not None and (self.eval is None) == (self.holdout is None):
            raise ValueError("data.instruction: give either an `eval` file or a `holdout`, "
                             "not both and not neither")
        if self.preset is not None and self.eval is not None:
            raise ValueError(f"data.instruction: preset {self.preset} brings its own evaluation "
                             "split; drop `eval`")
        if self.preset == "gsm8k" and self.holdout is not None:
            raise ValueError("data.instruction: gsm8k is scored on its test file; drop "
                             "`holdout`")
        return self

    def resolved(self) -> tuple[InstructionSource, InstructionSource | None, Holdout | None]:
        """(train source, eval source, holdout): exactly one of the last two is set."""
        if self.preset is not None:
            train, evaluation = PRESETS[self.preset]
            if evaluation is not None:
                return train, evaluation, None
            return train, None, self.holdout or Holdout()
        assert self.train is not None
        return self.train, self.eval, self.holdout


class ReferenceSettings(_Settings):
    """The reference decoder whose losses (IFD) and LoRA gradients (LESS) rank the pool."""

    model: str = Field(default="smollm2", description="Decoder: `smollm2` (offline "
                       "SmolLM2-135M-Instruct), a hub id or a local folder.")
    max_length: int = Field(default=256, ge=8, description="Tokens per row (prompt+response).")
    batch_size: int = Field(default=8, ge=1, description="Rows per scoring forward pass.")
    grad_dim: int = Field(default=256, ge=1, description="less: projected gradient dimensions.")
    projection: Literal["rademacher", "gaussian"] = Field(
        default="rademacher", description="less: the random projection's entries.")
    warm_fraction: float = Field(default=0.05, gt=0, le=1, description="less: share of the "
                                 "pool (at least 8 rows, seeded) the LoRA adapters are warmed "
                                 "up on before the gradients are taken.")
    warm_steps: int = Field(default=10, ge=1, description="less: warm-up optimiser steps.")
    seed: int = Field(default=0, description="Seed of the warm-up and of the projection.")
    device: str | None = Field(default=None, description="cuda if seen, else cpu.")


class SynthSettings(_Settings):
    """`llm_synth` on instruction data: how each slot's best generated pair is chosen."""

    criterion: Literal["loss", "ifd"] = Field(
        default="loss", description="The reference decoder's score a slot's winner has the "
        "lowest of: `loss`, the response's loss per token given the prompt (the pair the "
        "decoder finds most fluent), or `ifd`, that loss over the loss without the prompt "
        "(the response the prompt explains best).")


class InstructSection(_Settings):
    """Instruction data (`data.task: instruction`): the reference decoder and the learner."""

    reference: ReferenceSettings = Field(default_factory=ReferenceSettings)
    synth: SynthSettings = Field(default_factory=SynthSettings, description="`llm_synth` "
                                 "only: the choice among each slot's generated pairs.")
    sft: SftOptions = Field(default_factory=SftOptions, description="The `sft_lora` learner "
                            "trained on every distilled set and baseline (the same epochs "
                            "over each set's rows, or the same `steps`).")
    eval_rows: int | None = Field(
        default=None, ge=1, description="Score every fit on this many rows of the evaluation "
        "split (a fixed sample, seed `eval_seed`); unset: all of it.")
    eval_seed: int = Field(default=0, description="Seed of that fixed sample.")
