"""Per-example signals of a reference decoder: response losses, IFD and projected LoRA gradients.

`difficulty` scores each row's response twice with the same tokens: after its
prompt (the conditioned loss) and after only the BOS token (the direct loss).
IFD = conditioned / direct (Li et al., "From Quantity to Quality", NAACL 2024,
the Cherry LLM score): near 1 the prompt hardly helps the model to write the
response, far below 1 the response follows from the prompt; above 1 the prompt
misleads. Losses are per response token.

`gradient_features` is LESS's representation (Xia et al., ICML 2024): the
gradient of one row's response loss (per token) with respect to the LoRA
weights, flattened in parameter order and projected to `k` dimensions by a
fixed random matrix (Rademacher +-1/sqrt(k), or Gaussian N(0, 1/k)), whose
blocks are drawn from seeds derived from `seed`, so the same seed gives the
same projection and, on one device, the same features. Fresh LoRA adapters
have B = 0, so the gradients of A are zero: warm the adapters up first (LESS
trains them briefly on a random part of the pool; `warm_lora`). LESS
preconditions training gradients with Adam's state; these are plain SGD
gradients (its `sgd` variant).

Per-row gradients come from one forward and backward pass over `together` rows
of like length (right-padded): the sum of the rows' own mean losses is
differentiated once, and each LoRA matrix's per-row gradient is rebuilt from the
inputs and output gradients that hooks keep (dW_i = sum_t g_it^T x_it: rows do
not interact in a causal LM, and padded positions get no gradient), the
per-example trick of Opacus and BackPACK. A row's features then differ from its
gradient taken alone only by float rounding; `together=1` takes each row alone
(bitwise independent of its neighbours, and the path for any adapter whose
trainable weights are not bias-free linear layers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from distill_core.instruct.losses import mean_losses, response_losses
from distill_core.instruct.rows import InstructionRow
from distill_core.instruct.tokens import (
    Encoded,
    collate,
    encode_rows,
    pad_id_of,
    response_alone,
)
from distill_core.seeds import derive_seed

PROJECTION_BLOCK = 1 << 16  # rows of the projection matrix drawn from one derived seed


@dataclass
class Difficulty:
    """Per-row response losses (per token) with and without the prompt, and their ratio."""

    conditioned: np.ndarray
    direct: np.ndarray

    @property
    def ifd(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.conditioned / self.direct


def difficulty(model: Any, tokenizer: Any, rows: Sequence[InstructionRow], device: str,
               max_length: int = 512, batch_size: int = 16) -> Difficulty:
    """Conditioned and direct response loss of every row (see the module docstring)."""
    pad = pad_id_of(tokenizer)
    encoded = encode_rows(tokenizer, rows, max_length)
    alone = [response_alone(tokenizer, e) for e in encoded]
    with_prompt = mean_losses(*response_losses(model, encoded, pad, device, batch_size))
    without = mean_losses(*response_losses(model, alone, pad, device, batch_size))
    return Difficulty(conditioned=with_prompt, direct=without)


class RandomProjection:
    """A fixed `dim` x `k` random matrix, drawn block by block from seeds derived from `seed`.

    Blocks are kept (as float32) after first use when the whole matrix fits `cache_bytes`,
    else drawn again on every call. Each vector is projected on its own, so its result does
    not depend on the other vectors of the call (a batched product may round differently).
    """

    def __init__(self, dim: int, k: int, seed: int, kind: str = "rademacher",
                 cache_bytes: int = 1 << 30) -> None:
        if kind not in ("rademacher", "gaussian"):
            raise ValueError(f"projection kind must be rademacher or gaussian, got {kind!r}")
        if k < 1 or dim < 1:
            raise ValueError(f"projection needs dim >= 1 and k >= 1, got {dim} x {k}")
        self.dim, self.k, self.seed, self.kind = dim, k, seed, kind
        self._cache: dict[int, Any] | None = {} if dim * k * 4 <= cache_bytes else None
        self._placed: dict[tuple[int, str], Any] = {}  # cached blocks copied to a device

    def block(self, index: int) -> Any:
        """Rows [index * PROJECTION_BLOCK, ...) of the matrix, unscaled, float32 on the CPU."""
        import torch

        if self._cache is not None and index in self._cache:
            return self._cache[index]
        rows = min(PROJECTION_BLOCK, self.dim - index * PROJECTION_BLOCK)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, index))
        if self.kind == "rademacher":
            block = (torch.randint(0, 2, (rows, self.k), generator=generator,
                                   dtype=torch.int8) * 2 - 1).to(torch.float32)
        else:
            block = torch.randn((rows, self.k), generator=generator, dtype=torch.float32)
        if self._cache is not None:
            self._cache[index] = block
        return block

    def _on(self, index: int, device: Any) -> Any:
        """Block `index` on `device`; a cached block is copied there once, not every call."""
        block = self.block(index)
        if self._cache is None or str(device) == "cpu":
            return block.to(device)
        key = (index, str(device))
        if key not in self._placed:
            self._placed[key] = block.to(device)
        return self._placed[key]

    def __call__(self, vectors: Any) -> Any:
        """[n, dim] float tensor -> [n, k] float32 tensor (on the vectors' device)."""
        import torch

        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions, the projection "
                             f"{self.dim}")
        out = torch.zeros((vectors.shape[0], self.k), dtype=torch.float32,
                          device=vectors.device)
        for index in range(math.ceil(self.dim / PROJECTION_BLOCK)):
            start = index * PROJECTION_BLOCK
            block = self._on(index, vectors.device)
            part = vectors[:, start:start + block.shape[0]].float()
            for row in range(vectors.shape[0]):
                out[row] += part[row] @ block
        return out / math.sqrt(self.k)


def lora_parameters(model: Any) -> list[tuple[str, Any]]:
    """The trainable (LoRA) parameters of `model`, in its parameter order."""
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters: wrap it with LoRA first")
    return params


def gradient_features(model: Any, tokenizer: Any, rows: Sequence[InstructionRow],
                      device: str, k: int = 256, seed: int = 0, kind: str = "rademacher",
                      max_length: int = 512, together: int = 8,
                      projection: RandomProjection | None = None) -> np.ndarray:
    """[len(rows), k] projected gradients of each row's response loss w.r.t. the LoRA weights.

    `together` rows of like length share one forward and backward pass (see the module
    docstring; 1: each row alone). Rows keep their input order in the result.
    """
    if together < 1:
        raise ValueError(f"together must be >= 1, got {together}")
    named = lora_parameters(model)
    params = [p for _, p in named]
    dim = sum(p.numel() for p in params)
    projection = projection or RandomProjection(dim, k, seed, kind)
    pad = pad_id_of(tokenizer)
    encoded = encode_rows(tokenizer, rows, max_length)
    linears = _lora_linears(model, named) if together > 1 else None
    step = together if linears is not None else 1
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    features = np.zeros((len(rows), projection.k), dtype=np.float32)
    was_training = model.training
    model.eval()  # dropout off: the gradient of one row is a function of the row
    try:
        for start in range(0, len(order), step):
            chosen = order[start:start + step]
            chunk = [encoded[i] for i in chosen]
            grads = (_batch_gradients(model, chunk, linears, pad, device)
                     if linears is not None
                     else _row_gradients(model, chunk, params, pad, device))
            features[chosen] = projection(grads).cpu().numpy()
    finally:
        model.train(was_training)
    return features


def _lora_linears(model: Any, named: list[tuple[str, Any]]) -> list[Any] | None:
    """The bias-free linear layers that own the trainable weights, in parameter order;
    None when some trainable weight is anything else (the per-row path handles those)."""
    import torch

    modules = dict(model.named_modules())
    linears = []
    for name, _ in named:
        owner, _, leaf = name.rpartition(".")
        module = modules.get(owner)
        if leaf != "weight" or not isinstance(module, torch.nn.Linear) or module.bias is not None:
            return None
        linears.append(module)
    return linears


def _batch_gradients(model: Any, rows: Sequence[Encoded], linears: list[Any], pad: int,
                     device: str) -> Any:
    """[len(rows), dim] per-row gradients of each row's mean response loss from one backward
    pass: hooks keep each linear layer's inputs and output gradients."""
    import torch

    from distill_core.instruct.losses import token_losses

    inputs: dict[int, Any] = {}
    outputs: dict[int, Any] = {}

    def keep(index: int):
        def hook(_module: Any, args: tuple, output: Any) -> None:
            inputs[index] = args[0].detach()
            output.register_hook(lambda grad: outputs.__setitem__(index, grad.detach()))
        return hook

    handles = [m.register_forward_hook(keep(i)) for i, m in enumerate(linears)]
    try:
        batch = {name: v.to(device) for name, v in collate(rows, pad).items()}
        sums, counts = token_losses(model, batch)
        total = (sums / counts.clamp(min=1)).sum()
        torch.autograd.grad(total, [m.weight for m in linears], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    parts = []
    for i, module in enumerate(linears):
        if i in outputs:
            grad = torch.einsum("bto,bti->boi", outputs[i].float(), inputs[i].float())
        else:  # the layer's output did not reach the loss
            grad = torch.zeros((len(rows), *module.weight.shape), device=device)
        parts.append(grad.reshape(len(rows), -1))
    return torch.cat(parts, dim=1)


def _row_gradients(model: Any, rows: Sequence[Encoded], params: list[Any], pad: int,
                   device: str) -> Any:
    """[len(rows), dim] flattened gradients of each row's response loss (per token)."""
    import torch

    from distill_core.instruct.losses import response_loss

    dim = sum(p.numel() for p in params)
    grads = torch.zeros((len(rows), dim), dtype=torch.float32, device=device)
    for i, row in enumerate(rows):
        batch = {name: v.to(device) for name, v in collate([row], pad).items()}
        loss = response_loss(model, batch)
        parts = torch.autograd.grad(loss, params, allow_unused=True)
        grads[i] = torch.cat([(g if g is not None else torch.zeros_like(w)).reshape(-1).float()
                              for g, w in zip(parts, params, strict=True)])
    return grads


def warm_lora(model: Any, tokenizer: Any, rows: Sequence[InstructionRow], device: str,
              options: Any, seed: int) -> list[float]:
    """Train the LoRA adapters of `model` briefly on `rows` (LESS's warm-up); step losses."""
    from distill_core.instruct.sft import train_lora

    encoded = encode_rows(tokenizer, rows, options.max_length)
    return train_lora(model, encoded, options, seed, pad_id_of(tokenizer), device)
