"""How many steps on a learned synthetic set the learner that scores it takes.

Meta, gradient and distribution matching distil through one inner loop: `inner_steps` steps
on the synthetic set from a fresh head (`head_init`), and `embeds_finetune` runs exactly that.
Trajectory matching fits its `inner_steps` steps to carry an expert from any of its
checkpoints `expert_span` checkpoints further on, so a learner trained on its set replays
those steps over the whole trajectory: `inner_steps x ceil(expert_checkpoints / expert_span)`
steps from a fresh head (the experts' own start is a random head the set never sees).
Measured on SST-2's held-out training rows (`benchmarks/bench_learned_protocol.py`, 1 per
class, 3 seeds): 78.3 % with the replay from a zero head against 69.3 % for one step and
57.8 % for the replay from random heads; the experts' last checkpoints score 77.3 %.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

TRAJECTORY = "trajectory_matching"


def evaluation_steps(family: str, options: Mapping[str, Any]) -> int:
    """Steps on the synthetic set of the learner that scores a `family` run's tensors
    (`options`: the learn stage's method options)."""
    steps = int(options["inner_steps"])
    if family == TRAJECTORY:
        return steps * math.ceil(int(options["expert_checkpoints"]) /
                                 int(options["expert_span"]))
    return steps
