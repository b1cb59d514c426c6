"""The pretrained encoder's pooled features of a learn stage's real rows, kept in the process
for the stage's next seed.

Meta-matching without attention labels reads every real row through the pretrained encoder
once (its outer steps then cost a matrix product), and its matched-sentence decoding reads
the same features. They depend on the learner and the rows, not on the seed: without this,
each seed of a run read the whole pool out again (on whole SST-2, 67k rows, minutes a seed on
a CPU). One entry: a stage has one pool, and a process runs one stage at a time.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

_KEPT: dict[str, torch.Tensor] = {}


def pooled_key(model: str, options: dict[str, Any], texts: list[str], device: str) -> str:
    """What the features depend on: the encoder, its pooling, the tokens kept per row, the
    device, and the rows' texts."""
    digest = hashlib.sha256()
    for part in (model, options["pooling"], str(options["max_length"]), device, *texts):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def recall(key: str) -> torch.Tensor | None:
    return _KEPT.get(key)


def keep(key: str, features: torch.Tensor) -> None:
    _KEPT.clear()
    _KEPT[key] = features.detach()
