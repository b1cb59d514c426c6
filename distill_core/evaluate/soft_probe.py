"""The linear probe trained on soft labels: softmax regression with a distillation loss.

Same model and objective as the hard-label probe (multinomial logistic
regression, L2 with strength 1/C, full-batch L-BFGS), but the target of each
example is the teacher's distribution q: the loss is the cross-entropy
H(q, softmax(z / T)) · T², which differs from KL(q || p) by a constant. With
one-hot targets and T = 1 it is the hard-label probe's objective.
References: Hinton et al., Distilling the Knowledge in a Neural Network, 2015;
Sucholutsky & Schonlau, Soft-Label Dataset Distillation, IJCNN 2021.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from distill_core.evaluate.linear_probe import ProbeScore


def fit_soft_probe(train_x: np.ndarray, targets: np.ndarray, C: float = 1.0,  # noqa: N803
                   temperature: float = 1.0, max_iter: int = 500,
                   sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weights [classes, d] and bias [classes] minimising the weighted soft cross-entropy."""
    x = torch.tensor(train_x, dtype=torch.float64)
    q = torch.tensor(targets, dtype=torch.float64)
    w_i = torch.tensor(sample_weight if sample_weight is not None else np.ones(len(x)),
                          dtype=torch.float64)
    n, d = x.shape
    weight = torch.zeros(q.shape[1], d, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(q.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter,
                                  tolerance_grad=1e-9, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logp = torch.log_softmax((x @ weight.T + bias) / temperature, dim=1)
        data_loss = -(w_i * (q * logp).sum(dim=1)).sum() / w_i.sum() * temperature**2
        loss = data_loss + (weight**2).sum() / (2.0 * C * n)
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach().numpy(), bias.detach().numpy()


def soft_label_probe(train_x: np.ndarray, targets: np.ndarray, eval_x: np.ndarray,
                     eval_y: np.ndarray, labels: list[int], C: float = 1.0,  # noqa: N803
                     temperature: float = 1.0, sample_weight: np.ndarray | None = None
                     ) -> ProbeScore:
    start = time.perf_counter()
    weight, bias = fit_soft_probe(train_x, targets, C, temperature, sample_weight=sample_weight)
    predicted = np.argmax(eval_x @ weight.T + bias, axis=1)
    return ProbeScore(
        accuracy=float(accuracy_score(eval_y, predicted)),
        macro_f1=float(f1_score(eval_y, predicted, labels=labels, average="macro",
                                zero_division=0)),
        n_train=int(len(train_x)), wall_time_s=round(time.perf_counter() - start, 3),
        converged=True)
