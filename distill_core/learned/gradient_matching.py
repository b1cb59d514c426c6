"""Gradient matching (DC): per class, make the learner's gradient on synthetic rows point
where its gradient on real rows points.

At each outer step a fresh head is drawn on the pretrained encoder; for every
class c the gradient of the real cross-entropy on a real batch of class c and
the gradient of the inner loss on the synthetic rows of class c are taken with
respect to the learner's trainable weights (the last `last_layers` encoder
layers, set on the learner, plus the head); the loss is the sum over classes
and weight tensors of 1 − cosine between the two (the real one held constant).
Reference: Zhao, Mopuri & Bilen, Dataset Condensation with Gradient Matching,
ICLR 2021.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from distill_core.learned.base import Distiller
from distill_core.learned.inner import inner_loss
from distill_core.learned.real import RealData


def gradient_distance(real: list[torch.Tensor], synthetic: list[torch.Tensor]) -> torch.Tensor:
    """Σ over weight tensors of 1 − cos(flattened real gradient, flattened synthetic one)."""
    total = synthetic[0].new_zeros(())
    for g_real, g_syn in zip(real, synthetic, strict=True):
        total = total + 1 - torch.nn.functional.cosine_similarity(
            g_real.flatten(), g_syn.flatten(), dim=0, eps=1e-12)
    return total


class GradientMatching(Distiller):
    """Input: real batches per class. Output: the synthetic set (the learned lr is unused)."""

    name: ClassVar[str] = "gradient_matching"

    def matching_loss(self, real: RealData, step: int) -> torch.Tensor:
        params = self.learner.initial_params(self.draw_seed(step))
        names = list(params)
        weights = [params[n] for n in names]
        total = self.synthetic.embeds.new_zeros(())
        for label in range(self.synthetic.n_classes):
            rows = self.synthetic.class_rows(label)
            if len(rows) == 0:
                continue
            batch = real.class_batch(step, label)
            logits = self.learner(params, batch.attention_mask, input_ids=batch.input_ids).logits
            real_loss = torch.nn.functional.cross_entropy(logits, batch.labels)
            g_real = [g.detach() for g in torch.autograd.grad(real_loss, weights)]
            syn_loss = inner_loss(self.learner, params, self.synthetic.batch(rows),
                                  self.inner.attention_weight)
            g_syn = torch.autograd.grad(syn_loss, weights, create_graph=True)
            total = total + gradient_distance(g_real, list(g_syn))
        return total
