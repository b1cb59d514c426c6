"""Evaluate: train fresh learners on distilled sets and baselines, score on the eval split."""

from distill_core.evaluate.data import EvaluationData, FeaturePool, learner_data
from distill_core.evaluate.linear_probe import ProbeScore, linear_probe
from distill_core.evaluate.stage import (
    EvaluationPlan,
    count_fits,
    evaluate_selection,
    summarize_scores,
)

__all__ = ["EvaluationData", "EvaluationPlan", "FeaturePool", "ProbeScore", "count_fits",
           "evaluate_selection", "learner_data", "linear_probe", "summarize_scores"]
