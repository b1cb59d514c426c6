"""The outer loop every family shares: optimise the synthetic set against a matching loss.

A family subclasses `Distiller` and implements `matching_loss(real, step)`;
`fit` runs Adam on the synthetic tensors (embeddings, soft-label logits,
attention-label logits, log learning rate: one lr each), records the loss of
every outer step, and every `save_every` steps writes `state()` to the
checkpoint path (temporary file, then rename), so a killed run resumes from the
last saved step with `load_state` and continues exactly: every random draw of
step s (real batch, head init, perturbation) is derived from (seed, s), never
from a generator's running state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from distill_core.learned.functional import FunctionalLearner
from distill_core.learned.inner import InnerConfig
from distill_core.learned.real import RealData
from distill_core.learned.synthetic import SyntheticSet, load_verified, save_atomically
from distill_core.seeds import derive_seed

StepCallback = Callable[[int, float], None]  # (outer step done, its loss)


@dataclass(frozen=True)
class OuterConfig:
    """Outer optimisation (Adam). `lr_embeds` is in embedding units (MiniLM's word embeddings
    have std 0.056; 3e-3 moves each coordinate ~5 % of that per step); `lr_lr` acts on the
    log of the learned lr, so 5e-2 lets it change by ~5 % per step (at 1e-2 it could not
    reach a useful value in tens of steps). `init_pool`: how many distinct random learner
    draws (fresh heads, perturbations) the steps cycle through; 0 draws a new one at every
    step."""

    seed: int = 0
    lr_embeds: float = 3e-3
    lr_labels: float = 1e-2
    lr_attention: float = 1e-2
    lr_lr: float = 5e-2
    init_pool: int = 0
    save_every: int = 0
    checkpoint: str | None = None


@contextmanager
def deterministic() -> Iterator[None]:
    """torch's deterministic algorithms for the duration (restored afterwards)."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


class Distiller(ABC):
    """Base of the four families (see the module docstring)."""

    name: ClassVar[str] = "distiller"

    def __init__(self, learner: FunctionalLearner, synthetic: SyntheticSet,
                 outer: OuterConfig | None = None, inner: InnerConfig | None = None) -> None:
        self.learner = learner
        self.synthetic = synthetic
        self.outer = outer or OuterConfig()
        self.inner = inner or InnerConfig()
        groups = [{"params": [synthetic.embeds], "lr": self.outer.lr_embeds},
                  {"params": [synthetic.label_logits], "lr": self.outer.lr_labels},
                  {"params": [synthetic.log_lr], "lr": self.outer.lr_lr}]
        if synthetic.attention_logits is not None:
            groups.append({"params": [synthetic.attention_logits],
                           "lr": self.outer.lr_attention})
        self.optimizer = torch.optim.Adam(groups)
        self.step = 0
        self.losses: list[float] = []
        self.synthetic.meta.update({"family": self.name, "inner": asdict(self.inner)})

    @abstractmethod
    def matching_loss(self, real: RealData, step: int) -> torch.Tensor:
        """The family's loss at outer step `step` (differentiable in the synthetic tensors)."""

    def draw_seed(self, step: int, purpose: int = 1) -> int:
        """Seed of a random learner draw at `step` (cycled over `init_pool` when set)."""
        slot = step % self.outer.init_pool if self.outer.init_pool else step
        return derive_seed(self.outer.seed, purpose, slot)

    def fit(self, real: RealData, steps: int, callback: StepCallback | None = None
            ) -> SyntheticSet:
        """Run outer steps until `steps` are done in total (resumed runs continue)."""
        self.synthetic.train()
        while self.step < steps:
            loss = self.matching_loss(real, self.step)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.losses.append(float(loss.detach()))
            self.step += 1
            self.synthetic.meta["outer_steps"] = self.step
            if (self.outer.checkpoint and self.outer.save_every
                    and self.step % self.outer.save_every == 0):
                self.save_state(self.outer.checkpoint)
            if callback is not None:
                callback(self.step, self.losses[-1])
        return self.synthetic

    # -- resume ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"family": self.name, "step": self.step, "losses": list(self.losses),
                "synthetic": self.synthetic.to_dict(),
                "optimizer": self.optimizer.state_dict(), "extra": self.extra_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        if state["family"] != self.name:
            raise ValueError(f"state of {state['family']!r}, not {self.name!r}")
        saved = SyntheticSet.from_dict(state["synthetic"])
        self.synthetic.load_state_dict(saved.state_dict())
        self.synthetic.meta = dict(saved.meta)
        self.synthetic.parent_ids, self.synthetic.example_ids = (saved.parent_ids,
                                                                 saved.example_ids)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.losses = int(state["step"]), list(state["losses"])
        self.load_extra_state(state.get("extra") or {})

    def extra_state(self) -> dict[str, Any]:
        """Family-specific state worth resuming (none by default)."""
        return {}

    def load_extra_state(self, extra: dict[str, Any]) -> None:
        return None

    def save_state(self, path: str | Path) -> Path:
        """`state()` to `path`: written to a temporary name, then renamed."""
        return save_atomically(self.state(), path)

    def resume(self, path: str | Path) -> bool:
        """Load the state saved at `path` if there is one that matches its sha256 sidecar;
        True when it did (a changed or torn state file is not trusted: start over)."""
        state = load_verified(path)
        if state is None:
            return False
        self.load_state(state)
        return True
