"""Learned dataset distillation: synthetic input embeddings optimised for the encoder learner.

`SyntheticSet` holds the learnable tensors (embeddings, soft labels, attention
labels, learning rate) with lineage; `prototypes` initialises it from real
k-means prototypes or noise; `inner` is the training step every family
differentiates through and `embeds_finetune` (in `learner`) runs for real; the
four families (`MetaMatching`, `GradientMatching`, `TrajectoryMatching`,
`DistributionMatching`) share the `Distiller` outer loop with resumable state;
`decode` turns the result back into text. Pure torch + transformers.
"""

from distill_core.learned.base import Distiller, OuterConfig, deterministic
from distill_core.learned.distribution_matching import DistributionMatching
from distill_core.learned.experts import ExpertConfig, train_experts
from distill_core.learned.functional import FunctionalLearner
from distill_core.learned.gradient_matching import GradientMatching
from distill_core.learned.inner import InnerConfig, inner_train
from distill_core.learned.learner import accuracy, embeds_finetune
from distill_core.learned.meta_matching import MetaMatching
from distill_core.learned.real import RealData
from distill_core.learned.synthetic import SyntheticSet
from distill_core.learned.trajectory_matching import TrajectoryMatching

FAMILIES = {cls.name: cls for cls in (MetaMatching, GradientMatching, TrajectoryMatching,
                                      DistributionMatching)}

__all__ = ["FAMILIES", "DistributionMatching", "Distiller", "ExpertConfig", "FunctionalLearner",
           "GradientMatching", "InnerConfig", "MetaMatching", "OuterConfig", "RealData",
           "SyntheticSet", "TrajectoryMatching", "accuracy", "deterministic", "embeds_finetune",
           "inner_train", "train_experts"]
