"""Filter: candidates -> the distilled set, with every dropped row in rejects."""

from distill_core.filter.stage import FilterContext, FilterResult, clean_corpus, filter_candidates

__all__ = ["FilterContext", "FilterResult", "clean_corpus", "filter_candidates"]
