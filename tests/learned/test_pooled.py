"""`FunctionalLearner.pooled` reads rows in batches of like length cut to their longest row:
the features are those of each row on its own, padded as given, in input order."""

from __future__ import annotations

import torch

from distill_core.learned.functional import FunctionalLearner


def test_trimmed_batches_give_each_rows_own_features(tiny_encoder, real) -> None:
    learner = FunctionalLearner(tiny_encoder.eval(), n_classes=2)
    params = learner.fresh_head(0)
    with torch.no_grad():
        one_by_one = torch.cat([learner(params, real.attention_mask[i:i + 1],
                                        real.input_ids[i:i + 1]).pooled
                                for i in range(len(real))])
    lengths = real.attention_mask.sum(1)
    assert int((lengths < real.attention_mask.shape[1] // 2).sum()) > len(real) // 2  # to cut
    for batch_size in (1, 16, 1000):
        raw = learner.pooled(real.attention_mask, input_ids=real.input_ids,
                             batch_size=batch_size, normalize=False)
        assert torch.allclose(raw, one_by_one, atol=1e-5)
    normalised = learner.pooled(real.attention_mask, input_ids=real.input_ids)
    assert torch.allclose(normalised, torch.nn.functional.normalize(one_by_one, dim=1),
                          atol=1e-5)
    assert learner.pooled(real.attention_mask[:0], input_ids=real.input_ids[:0]).shape == (
        0, learner.hidden_size)
