"""Meta-matching actually learns: a few outer steps raise the accuracy of the learner trained on
the synthetic set (the protocol `embeds_finetune` runs), and the head-only fast path it takes
when the encoder cannot move is exactly the full inner loop."""

from __future__ import annotations

import torch

from distill_core.learned import (
    FunctionalLearner,
    InnerConfig,
    MetaMatching,
    OuterConfig,
    SyntheticSet,
    accuracy,
    deterministic,
    embeds_finetune,
    prototypes,
)


def test_outer_steps_raise_inner_trained_accuracy(tiny_encoder, real, make_synthetic) -> None:
    # The defaults: one step from a zero head. Before the fix (a random head, lr 0.01 learned at
    # 0.01 per step) the one inner step hardly moved the logits and accuracy stayed put.
    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    synthetic = make_synthetic(learner, per_class=1, attention=False, lr=1.0)
    inner = InnerConfig()

    def score() -> float:
        return accuracy(learner, embeds_finetune(learner, synthetic, inner, head_seed=0), real)

    before = score()
    distiller = MetaMatching(learner, synthetic, OuterConfig(seed=0), inner)
    assert distiller.static
    with deterministic():
        distiller.fit(real, 15)
    after = score()
    assert after >= before + 0.08, (before, after)
    assert distiller.losses[-1] < distiller.losses[0] - 0.05


def test_head_only_fast_path_is_the_full_inner_loop(tiny_encoder, real, make_synthetic) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    inner = InnerConfig(steps=1, head_init="zero")
    distiller = MetaMatching(learner, make_synthetic(learner, attention=False), OuterConfig(seed=1),
                             inner, keep_last_inner=True)
    assert distiller.static
    with deterministic():
        distiller.fit(real, 2)
    last = distiller.last_inner
    trained = embeds_finetune(learner, SyntheticSet.from_dict(last["synthetic"]), inner,
                              last["head_seed"])  # every encoder weight through the full step
    assert set(trained) == set(last["params"])
    for name, value in trained.items():
        torch.testing.assert_close(value, last["params"][name], rtol=1e-5, atol=1e-6)
    pretrained = dict(learner.encoder.named_parameters())
    for name in learner.trainable:  # a zero head passes no gradient to the encoder
        assert torch.equal(trained[f"encoder.{name}"], pretrained[name])


def test_attention_labels_make_the_encoder_move(tiny_encoder, real, make_synthetic) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    synthetic = prototypes.match_attention(make_synthetic(learner), learner)
    distiller = MetaMatching(learner, synthetic, OuterConfig(seed=0), InnerConfig())
    assert not distiller.static  # the attention KL reaches the encoder
    batch = synthetic.batch()
    out = learner(learner.fresh_head(0), batch.mask, inputs_embeds=batch.embeds,
                  output_attentions=True)
    torch.testing.assert_close(batch.attention, out.attentions, rtol=1e-4, atol=1e-6)
    with deterministic():
        distiller.fit(real, 3)
    assert synthetic.attention_logits.grad is not None
    assert float(synthetic.attention_logits.grad.abs().max()) > 0
