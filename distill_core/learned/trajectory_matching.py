"""Trajectory matching (MTT): synthetic steps from an expert checkpoint must land on a later one.

At each outer step a trajectory and a start t are drawn from (seed, step); the
learner starts at checkpoint t (trainable encoder weights and head), takes
`inner.steps` steps on the synthetic set with the learned lr (differentiably),
and the loss is ‖θ̂ − θ_{t+M}‖² / ‖θ_t − θ_{t+M}‖², M = `expert_span`
checkpoints ahead. The learner's trainable set must be the one the experts
were trained with (see `experts.train_experts`).
Reference: Cazenavette et al., CVPR 2022; the 2025 text trajectory-matching work
(arXiv 2504.09818).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from distill_core.learned.base import Distiller
from distill_core.learned.experts import load_checkpoint
from distill_core.learned.functional import Params
from distill_core.learned.inner import inner_train
from distill_core.learned.real import RealData


def squared_distance(a: Params, b: Params) -> torch.Tensor:
    return sum((a[k] - b[k]).pow(2).sum() for k in b)  # type: ignore[return-value]


class TrajectoryMatching(Distiller):
    """Attributes: `trajectories` (lists of checkpoint files), `expert_span` (M), `max_start`
    (latest start checkpoint; default: the last one that has a target)."""

    name: ClassVar[str] = "trajectory_matching"

    def __init__(self, *args: Any, trajectories: list[list[Path]], expert_span: int = 2,
                 max_start: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not trajectories or any(len(t) <= expert_span for t in trajectories):
            raise ValueError(f"every trajectory needs more than {expert_span} checkpoints")
        self.trajectories = [[Path(p) for p in t] for t in trajectories]
        self.expert_span = expert_span
        self.max_start = max_start
        self._cache: dict[Path, Params] = {}

    def _load(self, path: Path) -> Params:
        if path not in self._cache:
            self._cache[path] = {k: v.to(self.learner.device)
                                 for k, v in load_checkpoint(path).items()}
        return self._cache[path]

    def matching_loss(self, real: RealData, step: int) -> torch.Tensor:
        rng = np.random.default_rng(self.draw_seed(step, purpose=2))
        trajectory = self.trajectories[int(rng.integers(len(self.trajectories)))]
        last = len(trajectory) - 1 - self.expert_span
        if self.max_start is not None:
            last = min(last, self.max_start)
        start_index = int(rng.integers(0, last + 1))
        start = {k: v.clone().requires_grad_(True)
                 for k, v in self._load(trajectory[start_index]).items()}
        target = self._load(trajectory[start_index + self.expert_span])
        trained = inner_train(self.learner, start, self.synthetic.batch(), self.synthetic.lr,
                              self.inner, create_graph=True)
        return squared_distance(trained, target) / squared_distance(start, target).detach()
