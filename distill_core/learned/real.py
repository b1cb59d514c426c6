"""Real training rows, tokenised once, drawn as batches that depend only on (seed, step).

The outer loop of every family reads real data through `RealData.batch` or
`RealData.class_batch`; since a batch is a pure function of the seed and the
outer step, a run resumed at step s sees exactly the batches an uninterrupted
run sees. Each batch is trimmed to its longest row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distill_core.seeds import derive_seed


@dataclass
class RealBatch:
    input_ids: torch.Tensor  # [b, l]
    attention_mask: torch.Tensor  # [b, l]
    labels: torch.Tensor  # [b]


@dataclass
class RealData:
    """Tokenised real rows (`example_ids`, `texts` kept for decoding and lineage)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    example_ids: list[str]
    texts: list[str]
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"  # where batches are delivered

    @classmethod
    def from_texts(cls, tokenizer: Any, texts: Sequence[str], labels: Sequence[int],
                   example_ids: Sequence[str], max_length: int = 64, batch_size: int = 64,
                   seed: int = 0, device: str = "cpu") -> RealData:
        encoded = tokenizer(list(texts), padding="longest", truncation=True,
                            max_length=max_length, return_tensors="pt")
        return cls(encoded["input_ids"], encoded["attention_mask"],
                   torch.as_tensor(np.asarray(labels), dtype=torch.long), list(example_ids),
                   list(texts), batch_size, seed, device)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray | torch.Tensor) -> RealBatch:
        index = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        mask = self.attention_mask[index]
        width = max(int(mask.sum(1).max()), 1) if len(index) else 1
        return RealBatch(self.input_ids[index, :width].to(self.device),
                         mask[:, :width].to(self.device), self.labels[index].to(self.device))

    def _rows(self, rows: np.ndarray, step: int, slot: int, size: int) -> np.ndarray:
        if size >= len(rows):
            return rows
        rng = np.random.default_rng(derive_seed(self.seed, step, slot))
        return np.sort(rng.choice(rows, size=size, replace=False))

    def _draw(self, rows: np.ndarray, step: int, slot: int, size: int) -> RealBatch:
        return self.take(self._rows(rows, step, slot, size))

    def batch_rows(self, step: int) -> np.ndarray:
        """Indices of the rows `batch(step)` delivers."""
        return self._rows(np.arange(len(self)), step, 0, self.batch_size)

    def batch(self, step: int) -> RealBatch:
        """`batch_size` rows drawn without replacement for outer step `step` (all if fewer)."""
        return self.take(self.batch_rows(step))

    def class_batch(self, step: int, label: int, size: int | None = None) -> RealBatch:
        """Up to `size` (default `batch_size`) rows of class `label` for outer step `step`."""
        rows = np.flatnonzero(self.labels.numpy() == label)
        return self._draw(rows, step, label + 1, size or self.batch_size)

    def batches(self, size: int = 128) -> Iterator[RealBatch]:
        """Every row once, in order (for evaluation)."""
        for start in range(0, len(self), size):
            yield self.take(np.arange(start, min(start + size, len(self))))
