"""A small BERT-style encoder with random weights, for learners trained from scratch.

Transfer across architectures: a distilled set chosen with one encoder's
features should still teach a model that has never seen pretraining. The
architecture comes from the config; the tokenizer is a pretrained one's
vocabulary (by name or folder) so no tokenizer training is needed per cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill_core.hub import require_hub
from distill_core.signals.models import hub_unavailable, resolve_model_path


@dataclass(frozen=True)
class ScratchArchitecture:
    layers: int = 2
    hidden: int = 128
    heads: int = 4
    intermediate: int = 512


def scratch_encoder(tokenizer_model: str, architecture: ScratchArchitecture, max_length: int,
                    seed: int):
    """(randomly initialised encoder, tokenizer); the same seed gives the same weights."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = resolve_model_path(tokenizer_model)
    if not Path(path).is_dir():
        require_hub(f"tokenizer {tokenizer_model!r}", "Offline, use a local model folder.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise hub_unavailable(tokenizer_model, exc) from exc
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=architecture.hidden,
                        num_hidden_layers=architecture.layers,
                        num_attention_heads=architecture.heads,
                        intermediate_size=architecture.intermediate,
                        max_position_embeddings=max(512, max_length), type_vocab_size=2,
                        pad_token_id=tokenizer.pad_token_id or 0)
    torch.manual_seed(seed)
    return BertModel(config, add_pooling_layer=False), tokenizer
