"""Moved to `distill_core.learners` (the learner registry). `tasks/bench.py` still imports
`LearnerSpec` from here; drop this module once it imports from `distill_core.learners`."""

from distill_core.learners import LearnerData, LearnerSpec

__all__ = ["LearnerData", "LearnerSpec"]
