"""Learners: train a fresh model on a distilled set and score it, the same in `run` and `bench`.

`LEARNERS` (in `registry`) lists the kinds (`linear_probe`, `finetune`,
`scratch`); `LearnerSpec` holds one learner's settings; `score_learner` trains
the kind a spec names on `TrainingRows` (hard labels, or soft-label targets)
and returns its `ProbeScore` on the evaluation split.
"""

from distill_core.learners.data import LearnerData, TrainingRows
from distill_core.learners.registry import (
    LEARNERS,
    Learner,
    TrainFn,
    get_learner,
    learner_kinds,
    score_learner,
)
from distill_core.learners.spec import (
    DEFAULT_ENCODER,
    GRID_FIELDS,
    LearnerEntry,
    LearnerSpec,
    as_spec,
)

__all__ = ["DEFAULT_ENCODER", "GRID_FIELDS", "LEARNERS", "Learner", "LearnerData", "LearnerEntry",
           "LearnerSpec", "TrainFn", "TrainingRows", "as_spec", "get_learner", "learner_kinds",
           "score_learner"]
