"""The learner of learned distillation: a pretrained encoder plus a linear head, run functionally.

Every family differentiates through training, so the learner's weights are a
plain dict of tensors (`encoder.<name>` for the trainable encoder parameters,
`head.weight` / `head.bias` for the classifier) passed to
`torch.func.functional_call`; the module itself only supplies the frozen rest.
Inputs are either `input_ids` (real rows) or `inputs_embeds` (synthetic rows,
position-free word embeddings: the encoder adds positions and LayerNorm as it
does for token ids). The encoder runs with eager attention so that
`output_attentions=True` returns the first token's attention per layer and head.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch.func import functional_call

Params = dict[str, torch.Tensor]
POOLINGS = ("mean", "cls")
HEAD_INITS = ("random", "zero")
LAYER_INDEX = re.compile(r"(?:^|\.)layer\.(\d+)\.")


def prepare_encoder(encoder: torch.nn.Module) -> torch.nn.Module:
    """fp32, eval mode (no dropout), eager attention (attention probabilities available)."""
    encoder = encoder.float().eval()
    if hasattr(encoder, "set_attn_implementation"):
        encoder.set_attn_implementation("eager")
    else:  # older transformers
        encoder.config._attn_implementation = "eager"
    return encoder


def trainable_names(encoder: torch.nn.Module, last_layers: int | None) -> list[str]:
    """Encoder parameter names trained by the learner: every parameter that can affect the
    loss on `inputs_embeds` (the word-embedding table and the unused pooler excluded), or only
    those of the last `last_layers` transformer layers (`...layer.<i>.`)."""
    table = encoder.get_input_embeddings().weight
    names = [name for name, value in encoder.named_parameters()
             if value is not table and not name.startswith("pooler.")]
    if last_layers is None:
        return names
    first = int(encoder.config.num_hidden_layers) - last_layers
    kept = []
    for name in names:
        match = LAYER_INDEX.search(name)
        if match is not None and int(match.group(1)) >= first:
            kept.append(name)
    return kept


@dataclass
class EncoderOutput:
    logits: torch.Tensor  # [n, C]
    pooled: torch.Tensor  # [n, d]
    attentions: torch.Tensor | None  # first-token attention [n, layers, heads, L]


class FunctionalLearner:
    """A pretrained encoder with a fresh linear head, called with an explicit weight dict.

    Attributes: `n_classes`; `pooling` (`mean` over the attention mask, or `cls`, the first
    token); `trainable` (encoder parameter names the learner trains; the others stay at
    their pretrained values).
    """

    def __init__(self, encoder: torch.nn.Module, n_classes: int, pooling: str = "mean",
                 last_layers: int | None = None) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.encoder = prepare_encoder(encoder)
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.n_classes = n_classes
        self.pooling = pooling
        self.last_layers = last_layers
        self.trainable = trainable_names(self.encoder, last_layers)
        self.device = next(self.encoder.parameters()).device

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.config.hidden_size)

    @property
    def attention_shape(self) -> tuple[int, int]:
        return int(self.encoder.config.num_hidden_layers), int(
            self.encoder.config.num_attention_heads)

    @property
    def word_embeddings(self) -> torch.Tensor:
        return self.encoder.get_input_embeddings().weight.detach()

    def fresh_head(self, seed: int, init: str = "random") -> Params:
        """A new linear head: `random` initialises it like `torch.nn.Linear` from its own
        generator (seeded `seed`); `zero` is all zeros (then one inner step on the synthetic
        set makes the head Σ (soft label − prediction) ⊗ synthetic feature, and the first
        step leaves the encoder where it is unless attention labels pull on it)."""
        if init not in HEAD_INITS:
            raise ValueError(f"head init must be one of {HEAD_INITS}, not {init!r}")
        if init == "zero":
            return {"head.weight": torch.zeros(self.n_classes, self.hidden_size,
                                               device=self.device),
                    "head.bias": torch.zeros(self.n_classes, device=self.device)}
        generator = torch.Generator().manual_seed(int(seed))
        bound = 1.0 / math.sqrt(self.hidden_size)
        weight = (torch.rand(self.n_classes, self.hidden_size, generator=generator) * 2 - 1) * bound
        bias = (torch.rand(self.n_classes, generator=generator) * 2 - 1) * bound
        return {"head.weight": weight.to(self.device), "head.bias": bias.to(self.device)}

    def initial_params(self, head_seed: int, head_init: str = "random") -> Params:
        """Pretrained trainable encoder weights plus a fresh head (`fresh_head`), as leaves
        requiring grad."""
        named = dict(self.encoder.named_parameters())
        params = {f"encoder.{n}": named[n].detach().clone() for n in self.trainable}
        params.update(self.fresh_head(head_seed, head_init))
        return {k: v.requires_grad_(True) for k, v in params.items()}

    def __call__(self, params: Params, attention_mask: torch.Tensor,
                 input_ids: torch.Tensor | None = None,
                 inputs_embeds: torch.Tensor | None = None,
                 output_attentions: bool = False) -> EncoderOutput:
        encoder_params = {k[len("encoder."):]: v for k, v in params.items()
                          if k.startswith("encoder.")}
        out = functional_call(self.encoder, encoder_params, args=(), kwargs={
            "input_ids": input_ids, "inputs_embeds": inputs_embeds,
            "attention_mask": attention_mask, "output_attentions": output_attentions},
            strict=False)
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        logits = torch.nn.functional.linear(pooled, params["head.weight"], params["head.bias"])
        attentions = None
        if output_attentions:
            attentions = torch.stack([a[:, :, 0, :] for a in out.attentions], dim=1)
        return EncoderOutput(logits, pooled, attentions)

    def pooled(self, attention_mask: torch.Tensor, input_ids: torch.Tensor | None = None,
               inputs_embeds: torch.Tensor | None = None, batch_size: int = 128,
               normalize: bool = True) -> torch.Tensor:
        """Pooled features of the pretrained encoder (no head, no grad), L2-normalised unless
        `normalize` is False (the head's own inputs), in input order. Rows are read in
        batches of like length, each cut after its last unmasked position: the padding
        beyond it changes nothing (masked), and a pool of short texts padded to
        `max_length` no longer pays for it."""
        params = self.fresh_head(0)
        positions = torch.arange(1, attention_mask.shape[1] + 1, device=attention_mask.device)
        ends = (attention_mask.ne(0) * positions).amax(1)  # last unmasked position + 1
        order = torch.argsort(ends, stable=True)
        out = torch.zeros(len(order), self.hidden_size, device=self.device)
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                width = max(int(ends[rows].max()), 1)
                pooled = self(params, attention_mask[rows, :width],
                              None if input_ids is None else input_ids[rows, :width],
                              None if inputs_embeds is None else inputs_embeds[rows, :width]
                              ).pooled
                out[rows] = (torch.nn.functional.normalize(pooled, dim=1) if normalize
                             else pooled).to(out.dtype)
        return out
