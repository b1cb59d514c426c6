"""The inner training step shared by every family and by the `embeds_finetune` learner.

`inner_train` runs k steps of plain gradient descent with the synthetic set's
learned learning rate on the whole synthetic batch: loss = soft-label
cross-entropy + λ · KL(attention labels ‖ the model's first-token attention),
averaged over examples (and layers and heads for the KL). With
`create_graph=True` the updates stay differentiable, so an outer loss on the
returned weights reaches the synthetic tensors (and the learned lr); with
`create_graph=False` the same arithmetic trains a learner for real.
References: Wang et al. 2018 (dataset distillation, learned lr); Sucholutsky &
Schonlau 2021 (soft labels); Maekawa et al. 2023 (attention labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distill_core.learned.functional import FunctionalLearner, Params
from distill_core.learned.synthetic import SyntheticBatch


@dataclass(frozen=True)
class InnerConfig:
    """`steps`: inner gradient steps (k); `attention_weight`: λ of the attention KL (used when
    the synthetic set has attention labels); `head_init`: the learner's fresh head, `zero` or
    `random` (`FunctionalLearner.fresh_head`)."""

    steps: int = 1
    attention_weight: float = 1.0
    head_init: str = "zero"


def encoder_static(learner: FunctionalLearner, config: InnerConfig, attention: bool) -> bool:
    """True when the inner loop provably leaves the encoder at its pretrained weights: the
    learner trains no encoder weight, or it takes one step from a zero head without attention
    labels (the loss reaches the encoder only through the head, so every encoder gradient is
    exactly 0). Then features of real rows can be computed once and reused."""
    if not learner.trainable:
        return True
    return (config.steps == 1 and config.head_init == "zero"
            and not (attention and config.attention_weight > 0))


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * torch.log_softmax(logits, dim=-1)).sum(-1).mean()


def attention_kl(targets: torch.Tensor, attentions: torch.Tensor) -> torch.Tensor:
    """KL(targets ‖ attentions) over the key axis, mean over examples, layers and heads.
    Masked keys have target 0 and contribute 0."""
    log_p = targets.clamp_min(1e-30).log()
    log_q = attentions.clamp_min(1e-12).log()
    return (targets * (log_p - log_q)).sum(-1).mean()


def inner_loss(learner: FunctionalLearner, params: Params, batch: SyntheticBatch,
               attention_weight: float) -> torch.Tensor:
    """Soft-label CE (+ λ · attention KL) of the learner with weights `params` on `batch`."""
    use_attention = batch.attention is not None and attention_weight > 0
    out = learner(params, batch.mask, inputs_embeds=batch.embeds,
                  output_attentions=use_attention)
    loss = soft_cross_entropy(out.logits, batch.soft_labels)
    if use_attention:
        loss = loss + attention_weight * attention_kl(batch.attention, out.attentions)
    return loss


def inner_step(learner: FunctionalLearner, params: Params, batch: SyntheticBatch,
               lr: torch.Tensor, attention_weight: float, create_graph: bool) -> Params:
    """One step θ ← θ − lr · ∇θ L_syn(θ)."""
    names = list(params)
    loss = inner_loss(learner, params, batch, attention_weight)
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph,
                                allow_unused=True)
    updated = {n: params[n] if g is None else params[n] - lr * g
               for n, g in zip(names, grads, strict=True)}
    if not create_graph:
        updated = {n: p.detach().requires_grad_(True) for n, p in updated.items()}
    return updated


def inner_train(learner: FunctionalLearner, params: Params, batch: SyntheticBatch,
                lr: torch.Tensor, config: InnerConfig, create_graph: bool) -> Params:
    """`config.steps` inner steps from `params` on the full synthetic `batch`."""
    for _ in range(config.steps):
        params = inner_step(learner, params, batch, lr, config.attention_weight, create_graph)
    return params
