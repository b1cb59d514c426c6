"""Per-example response loss of a causal LM: summed token cross-entropy and token counts.

Only labelled positions count (the response; see `tokens`). Rows are batched by
length (each batch pads to its own longest row) and results come back in input
order, so the sums can be pooled per token (held-out loss) or averaged per row
(IFD, per-example reference loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from distill_core.instruct.tokens import IGNORE, Encoded, collate


def token_losses(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """(summed loss per row, labelled tokens per row) of one collated batch, as tensors;
    logits at position t predict the token at t + 1."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    scored = targets != IGNORE  # only these positions' log-softmax is computed
    losses = torch.zeros(targets.shape, dtype=torch.float32, device=logits.device)
    losses[scored] = F.cross_entropy(logits[:, :-1, :][scored].float(), targets[scored],
                                     reduction="none")
    return losses.sum(dim=1), scored.sum(dim=1).to(torch.long)


def response_losses(model: Any, encoded: Sequence[Encoded], pad_id: int, device: str,
                    batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(summed loss, token count) per row, in input order, without gradients."""
    import torch

    sums = np.zeros(len(encoded), dtype=np.float64)
    counts = np.zeros(len(encoded), dtype=np.int64)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in
                     collate([encoded[i] for i in chosen], pad_id).items()}
            total, n = token_losses(model, batch)
            sums[chosen] = total.double().cpu().numpy()
            counts[chosen] = n.cpu().numpy()
    model.train(was_training)
    return sums, counts


def mean_losses(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Loss per token of each row (NaN for a row with no labelled token)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
