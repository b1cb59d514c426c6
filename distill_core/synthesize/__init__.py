"""Synthesize: choose (or, later, generate) the distilled candidates, one method per run."""

from distill_core.synthesize.base import SELECTORS, ClassSelection, select_per_class
from distill_core.synthesize.stage import select_candidates

__all__ = ["SELECTORS", "ClassSelection", "select_candidates", "select_per_class"]
