"""Per-example response loss of a causal LM: summed token cross-entropy and token counts.

Only labelled positions count (the response; see `tokens`). Rows are batched by
length (each batch pads to its own longest row) and results come back in input
order, so the sums can be pooled per token (held-out loss) or averaged per row
(IFD, per-example reference loss).

The output head runs on the labelled positions only (`response_logits`): a
decoder's head is a (hidden × vocabulary) product per position, and with a
49k-token vocabulary its logits over every prompt and padding position cost
time and memory (8 rows × 512 positions × 49,152 logits is 805 MB in fp32) for
values the loss never reads. A forward pre-hook on the model's output
embeddings hands the head just those positions' hidden states, so whatever the
model does to the logits after its head (soft-capping, scaling) still applies,
and the loss is the model's own up to float rounding (a test checks it against
`model(**batch).loss`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from distill_core.instruct.tokens import IGNORE, Encoded, collate


def response_logits(model: Any, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(logits [N, vocabulary], targets [N], scored [rows, positions - 1]) of one collated
    batch's N labelled positions; logits at position t predict the token at t + 1."""
    targets = batch["labels"][:, 1:]
    scored = targets != IGNORE
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    narrowed: list[bool] = []

    def labelled_only(_module: Any, args: tuple) -> tuple | None:
        hidden = args[0]
        if hidden.dim() != 3 or tuple(hidden.shape[:2]) != (scored.shape[0],
                                                            scored.shape[1] + 1):
            return None  # not the per-position hidden states this hook expects: leave as is
        narrowed.append(True)
        return (hidden[:, :-1][scored].unsqueeze(0), *args[1:])

    handle = head.register_forward_pre_hook(labelled_only) if head is not None else None
    try:
        logits = model(input_ids=batch["input_ids"],
                       attention_mask=batch["attention_mask"]).logits
    finally:
        if handle is not None:
            handle.remove()
    logits = logits[0] if narrowed else logits[:, :-1, :][scored]
    return logits, targets[scored], scored


def response_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean cross-entropy over a collated batch's labelled tokens (the training loss), as a
    tensor: what `model(**batch).loss` gives, without the logits of unlabelled positions."""
    import torch.nn.functional as F  # noqa: N812

    logits, targets, _ = response_logits(model, batch)
    return F.cross_entropy(logits.float(), targets, reduction="mean")


def token_losses(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """(summed loss per row, labelled tokens per row) of one collated batch, as tensors."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    logits, targets, scored = response_logits(model, batch)
    losses = torch.zeros(scored.shape, dtype=torch.float32, device=logits.device)
    losses[scored] = F.cross_entropy(logits.float(), targets, reduction="none")
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
