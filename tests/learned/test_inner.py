"""The inner protocol: `embeds_finetune` is exactly the distillation's last inner loop."""

from __future__ import annotations

import torch

from distill_core.learned import (
    FunctionalLearner,
    InnerConfig,
    MetaMatching,
    OuterConfig,
    SyntheticSet,
    deterministic,
    embeds_finetune,
)
from distill_core.learned.inner import attention_kl, inner_loss


def test_embeds_finetune_reproduces_the_last_inner_loop(tiny_encoder, real,
                                                        make_synthetic) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    inner = InnerConfig(steps=3, attention_weight=0.5)
    distiller = MetaMatching(learner, make_synthetic(learner), OuterConfig(seed=3), inner,
                             keep_last_inner=True)
    with deterministic():
        distiller.fit(real, 2)
        last = distiller.last_inner
        used = SyntheticSet.from_dict(last["synthetic"])
        trained = embeds_finetune(learner, used, inner, last["head_seed"])
    assert set(trained) == set(last["params"])
    for name, value in trained.items():
        torch.testing.assert_close(value, last["params"][name], rtol=1e-5, atol=1e-6)
    # the tensors it used were the ones before the last update, and training moved the head
    assert not torch.equal(used.embeds, distiller.synthetic.embeds.detach())
    start = learner.fresh_head(last["head_seed"])["head.weight"]
    assert (trained["head.weight"] - start).abs().max() > 1e-4


def test_attention_labels_enter_the_inner_loss(tiny_encoder, make_synthetic) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    synthetic = make_synthetic(learner)
    with torch.no_grad():
        synthetic.attention_logits.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(0))
    params = learner.initial_params(0)
    batch = synthetic.batch()
    out = learner(params, batch.mask, inputs_embeds=batch.embeds, output_attentions=True)
    assert out.attentions.shape == (4, 2, 2, 16)
    assert float(attention_kl(out.attentions, out.attentions).detach()) < 1e-6
    kl = float(attention_kl(batch.attention, out.attentions).detach())
    assert kl > 0.1
    targets = batch.attention.detach()
    assert torch.allclose(targets.sum(-1), torch.ones(4, 2, 2))
    padding = synthetic.mask[:, None, None, :].expand_as(targets) == 0
    assert float(targets[padding].abs().sum()) == 0.0  # no weight on padding
    with_kl = inner_loss(learner, params, batch, attention_weight=1.0)
    without = inner_loss(learner, params, batch, attention_weight=0.0)
    assert abs(float(with_kl.detach()) - (float(without.detach()) + kl)) < 1e-5
