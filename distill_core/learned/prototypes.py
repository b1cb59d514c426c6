"""Starting points of a synthetic set: real k-means prototypes per class, or noise.

`from_real` runs the project's `kmeans` selector on each class's features (the
real row nearest each centroid, DiLM's "K-Center"; `init` may name another
registered selector, e.g. `random` or `herding`, to start from, or score, the
rows that selector picks), tokenises those rows padded
or truncated to a fixed length L and takes their word embeddings (no position
or LayerNorm: the encoder adds them to `inputs_embeds`), so an untouched
synthetic example is exactly its real row to the encoder, and lineage is the
row's `example_id`. `from_noise` draws embeddings with the word-embedding
table's scale and no lineage. Soft labels start as a smoothed one-hot,
attention labels as uniform over the unmasked keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from distill_core.learned.synthetic import SyntheticSet, synthetic_id
from distill_core.seeds import derive_seed
from distill_core.synthesize.base import SELECTORS, ClassData, select_per_class
from distill_core.synthesize.kmeans_prototypes import kmeans_prototypes


def initial_label_logits(labels: torch.Tensor, n_classes: int, smoothing: float) -> torch.Tensor:
    """log of a one-hot smoothed by `smoothing` (0: the hard label up to a tiny epsilon)."""
    target = torch.full((len(labels), n_classes), smoothing / n_classes)
    target[torch.arange(len(labels)), labels] += 1.0 - smoothing
    return target.clamp_min(1e-6).log()


def kmeans_rows(features: np.ndarray, labels: np.ndarray, n_classes: int, per_class: int,
                seed: int) -> list[np.ndarray]:
    """Per class, indices (into all rows) of the real rows nearest the k-means centroids."""
    chosen = []
    for label in range(n_classes):
        rows = np.flatnonzero(labels == label)
        if len(rows) < per_class:
            raise ValueError(f"class {label} has {len(rows)} rows, fewer than {per_class}")
        pick = kmeans_prototypes(ClassData(features[rows]), per_class,
                                 derive_seed(seed, label)).indices
        chosen.append(rows[pick])
    return chosen


def _attention_logits(n: int, attention_shape: tuple[int, int] | None, length: int
                      ) -> torch.Tensor | None:
    if attention_shape is None:
        return None
    return torch.zeros(n, *attention_shape, length)


def selected_rows(init: str, features: np.ndarray, labels: np.ndarray, n_classes: int,
                  per_class: int, seed: int) -> np.ndarray:
    """Indices of the rows selector `init` picks, `per_class` per class, class by class."""
    if init == "kmeans":
        return np.concatenate(kmeans_rows(features, labels, n_classes, per_class, seed))
    if init not in SELECTORS or SELECTORS[init].needs_teacher:
        raise ValueError(f"init {init!r} is not a selector that needs no teacher")
    counts = np.bincount(labels, minlength=n_classes)
    if len(counts) != n_classes or counts.min() < per_class:
        raise ValueError(f"every one of {n_classes} classes needs {per_class} rows: {counts}")
    return select_per_class(init, features, labels, per_class, seed).indices


def from_real(features: np.ndarray, labels: np.ndarray, texts: Sequence[str],
              init_ids: Sequence[str], tokenizer: Any, word_embeddings: torch.Tensor,
              n_classes: int, per_class: int, seq_len: int, seed: int, lr: float,
              attention_shape: tuple[int, int] | None = None, label_smoothing: float = 0.1,
              meta: dict[str, Any] | None = None, init: str = "kmeans") -> SyntheticSet:
    """Synthetic examples initialised from each class's k-means prototypes (or the rows the
    selector `init` picks).

    `features` [N, D], `labels` [N] (class ids), `texts` and `init_ids` (example_ids) are the
    real training rows; `attention_shape` = (layers, heads) adds learnable attention labels.
    """
    labels = np.asarray(labels)
    rows = selected_rows(init, np.asarray(features, dtype=np.float32), labels, n_classes,
                         per_class, seed)
    encoded = tokenizer([texts[i] for i in rows], padding="max_length", truncation=True,
                        max_length=seq_len, return_tensors="pt")
    table = word_embeddings.detach()
    embeds = table[encoded["input_ids"].to(table.device)].clone()
    hard = torch.as_tensor(labels[rows], dtype=torch.long)
    ids = [synthetic_id(seed, int(c), i) for c in range(n_classes) for i in range(per_class)]
    info = {"seed": seed, "init": init, "per_class": per_class, **(meta or {})}
    return SyntheticSet(embeds, encoded["attention_mask"], hard,
                        initial_label_logits(hard, n_classes, label_smoothing),
                        _attention_logits(len(rows), attention_shape, seq_len), lr,
                        [[init_ids[i]] for i in rows], ids, info)


def from_noise(word_embeddings: torch.Tensor, n_classes: int, per_class: int, seq_len: int,
               seed: int, lr: float, attention_shape: tuple[int, int] | None = None,
               label_smoothing: float = 0.1, meta: dict[str, Any] | None = None
               ) -> SyntheticSet:
    """Gaussian embeddings with the word-embedding table's mean and std, every position
    unmasked, no lineage."""
    generator = torch.Generator().manual_seed(derive_seed(seed, 0x6E6F6973))
    table = word_embeddings.detach()
    n = n_classes * per_class
    noise = torch.randn(n, seq_len, table.shape[1], generator=generator).to(table.device)
    embeds = table.mean() + table.std() * noise
    hard = torch.arange(n_classes).repeat_interleave(per_class)
    ids = [synthetic_id(seed, int(c), i) for c in range(n_classes) for i in range(per_class)]
    info = {"seed": seed, "init": "noise", "per_class": per_class, **(meta or {})}
    return SyntheticSet(embeds, torch.ones(n, seq_len, dtype=torch.long), hard,
                        initial_label_logits(hard, n_classes, label_smoothing),
                        _attention_logits(n, attention_shape, seq_len), lr,
                        [[] for _ in range(n)], ids, info)


def match_attention(synthetic: SyntheticSet, learner: Any) -> SyntheticSet:
    """Set the attention labels to the pretrained learner's own first-token attention on the
    synthetic rows (log-probabilities as logits; padding stays masked), in place.

    Uniform targets pull every attention head of the encoder in the first inner step
    whatever the data; matched targets start with zero attention loss and zero gradient
    on the encoder, so the attention variant starts from the same learner as the plain one
    and the outer loop moves the labels only where that lowers the real loss."""
    if synthetic.attention_logits is None:
        return synthetic
    params = learner.fresh_head(0)
    with torch.no_grad():
        out = learner(params, synthetic.mask, inputs_embeds=synthetic.embeds.detach(),
                      output_attentions=True)
        synthetic.attention_logits.copy_(out.attentions.clamp_min(1e-12).log())
    return synthetic
