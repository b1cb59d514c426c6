"""Meta-model matching: unroll the inner training, score the trained learner on real data.

At each outer step a fresh head is drawn on the pretrained encoder, the learner
is trained `inner.steps` (k) steps on the synthetic set with the learned lr
(differentiably), and the outer loss is its cross-entropy on a real batch.
With k = 1 and attention labels this is the protocol of Maekawa et al. (2023);
without them, soft-label dataset distillation (Sucholutsky & Schonlau 2021,
Wang et al. 2018). `keep_last_inner` keeps the synthetic tensors and the head
seed the last inner loop used and the weights it reached, so the
`embeds_finetune` learner can be checked against it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from distill_core.learned.base import Distiller
from distill_core.learned.inner import inner_train
from distill_core.learned.real import RealData


class MetaMatching(Distiller):
    """Attributes: `keep_last_inner`. Input: real batches. Output: the synthetic set."""

    name: ClassVar[str] = "meta_matching"

    def __init__(self, *args: Any, keep_last_inner: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_last_inner = keep_last_inner
        self.last_inner: dict[str, Any] | None = None

    def matching_loss(self, real: RealData, step: int) -> torch.Tensor:
        head_seed = self.draw_seed(step)
        params = self.learner.initial_params(head_seed)
        trained = inner_train(self.learner, params, self.synthetic.batch(), self.synthetic.lr,
                              self.inner, create_graph=True)
        batch = real.batch(step)
        logits = self.learner(trained, batch.attention_mask, input_ids=batch.input_ids).logits
        self.synthetic.meta["head_seed"] = head_seed
        if self.keep_last_inner:
            self.last_inner = {"synthetic": self.synthetic.to_dict(), "head_seed": head_seed,
                               "params": {k: v.detach().clone() for k, v in trained.items()}}
        return torch.nn.functional.cross_entropy(logits, batch.labels)
