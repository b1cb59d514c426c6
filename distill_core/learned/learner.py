"""`embeds_finetune`: train the encoder learner on a synthetic set under the exact inner protocol.

The learner the distillation optimised for: pretrained encoder, a fresh head
from `head_seed`, `inner.steps` plain gradient steps on the whole synthetic set
with its learned learning rate, soft labels and attention labels, i.e. the
same `inner_train` the families differentiate through, run without a graph.
`accuracy` scores the trained weights on real rows.
"""

from __future__ import annotations

import torch

from distill_core.learned.functional import FunctionalLearner, Params
from distill_core.learned.inner import InnerConfig, inner_train
from distill_core.learned.real import RealData
from distill_core.learned.synthetic import SyntheticSet


def embeds_finetune(learner: FunctionalLearner, synthetic: SyntheticSet, inner: InnerConfig,
                    head_seed: int) -> Params:
    """The learner's weights (trainable encoder part and head) after the inner protocol."""
    frozen = SyntheticSet.from_dict(synthetic.to_dict()).requires_grad_(False)
    params = learner.initial_params(head_seed, inner.head_init)
    trained = inner_train(learner, params, frozen.batch(), frozen.lr.detach(), inner,
                          create_graph=False)
    return {k: v.detach() for k, v in trained.items()}


def predict(learner: FunctionalLearner, params: Params, real: RealData,
            batch_size: int = 128) -> torch.Tensor:
    """Predicted class ids of every real row, in order."""
    predictions = []
    with torch.no_grad():
        for batch in real.batches(batch_size):
            logits = learner(params, batch.attention_mask, input_ids=batch.input_ids).logits
            predictions.append(logits.argmax(-1).cpu())
    return torch.cat(predictions)


def accuracy(learner: FunctionalLearner, params: Params, real: RealData,
             batch_size: int = 128) -> float:
    return float((predict(learner, params, real, batch_size) == real.labels).float().mean())
