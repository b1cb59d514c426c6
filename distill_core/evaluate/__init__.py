"""Evaluate: train fresh learners on distilled sets and baselines, score on the eval split."""

from distill_core.evaluate.linear_probe import ProbeScore, linear_probe
from distill_core.evaluate.stage import evaluate_selection, summarize_scores

__all__ = ["ProbeScore", "evaluate_selection", "linear_probe", "summarize_scores"]
