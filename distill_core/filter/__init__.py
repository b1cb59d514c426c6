"""Filter: candidates -> the distilled set, with every dropped row in rejects."""

from distill_core.filter.stage import FilterResult, filter_candidates

__all__ = ["FilterResult", "filter_candidates"]
