"""Distribution matching (DM): per class, the mean feature of the synthetic rows should equal
the mean feature of real rows, under randomly perturbed encoders.

At each outer step the encoder's weights are perturbed (Gaussian noise scaled
by each tensor's std, `noise`, or dropout in train mode, `dropout`), seeded by
(seed, step); the loss is Σ over classes of ‖mean pooled feature of a real
class batch − mean pooled feature of the class's synthetic rows‖² (maximum
mean discrepancy with a linear kernel). Soft labels, attention labels and the
learned lr receive no gradient here. Reference: Zhao & Bilen, Dataset
Condensation with Distribution Matching, WACV 2023.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from distill_core.learned.base import Distiller
from distill_core.learned.functional import Params
from distill_core.learned.real import RealData

PERTURBATIONS = ("noise", "dropout", "none")


class DistributionMatching(Distiller):
    """Attributes: `perturbation` (noise | dropout | none), `noise_scale` (relative std)."""

    name: ClassVar[str] = "distribution_matching"

    def __init__(self, *args: Any, perturbation: str = "noise", noise_scale: float = 0.05,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if perturbation not in PERTURBATIONS:
            raise ValueError(f"perturbation must be one of {PERTURBATIONS}")
        self.perturbation = perturbation
        self.noise_scale = noise_scale

    def perturbed(self, seed: int) -> Params:
        params = self.learner.initial_params(seed)
        if self.perturbation != "noise":
            return {k: v.detach() for k, v in params.items()}
        generator = torch.Generator().manual_seed(seed)
        out = {}
        for name, value in params.items():
            value = value.detach()
            scale = value.std() if value.numel() > 1 else value.abs()
            noise = torch.randn(value.shape, generator=generator).to(value.device)
            out[name] = value + self.noise_scale * scale * noise
        return out

    def matching_loss(self, real: RealData, step: int) -> torch.Tensor:
        seed = self.draw_seed(step)
        params = self.perturbed(seed)
        dropout = self.perturbation == "dropout"
        self.learner.encoder.train(dropout)
        with torch.random.fork_rng(devices=[]):
            try:
                return self._class_distances(real, step, seed, params)
            finally:
                self.learner.encoder.eval()

    def _class_distances(self, real: RealData, step: int, seed: int, params: Params
                         ) -> torch.Tensor:
        total = self.synthetic.embeds.new_zeros(())
        for label in range(self.synthetic.n_classes):
            rows = self.synthetic.class_rows(label)
            if len(rows) == 0:
                continue
            torch.manual_seed(seed + label)  # dropout masks of this step and class
            batch = real.class_batch(step, label)
            with torch.no_grad():
                target = self.learner(params, batch.attention_mask,
                                      input_ids=batch.input_ids).pooled.mean(0)
            syn = self.synthetic.batch(rows)
            mean = self.learner(params, syn.mask, inputs_embeds=syn.embeds).pooled.mean(0)
            total = total + (target - mean).pow(2).sum()
        return total
