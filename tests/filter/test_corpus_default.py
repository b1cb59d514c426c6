"""`filter.corpus` unset resolves by method: on where a drop after selection would undo what
selection solved (auto's cross-validated choice, learned labels or weights), off elsewhere;
explicitly off with learned labels or weights and a filter on, it is refused; a benchmark
grid draws every method's sets from one pool."""

from __future__ import annotations

import pytest

from distill_core.bench.config import BenchConfig
from distill_core.config import load_config
from distill_core.errors import ConfigError
from distill_core.methods.auto import settings_for


def _corpus(*overrides: str) -> bool:
    return load_config(None, list(overrides)).filter.corpus


def test_unset_corpus_filtering_follows_what_the_selection_solves() -> None:
    assert _corpus("synthesize.method=kmeans") is False
    assert _corpus("synthesize.method=herding") is False
    assert _corpus("synthesize.method=auto") is True
    assert _corpus("synthesize.method=kmeans", "synthesize.labels.learn=true") is True
    assert _corpus("synthesize.method=herding", "synthesize.weights.learn=true") is True
    # a set value is kept either way, and the run id records the resolved one
    assert _corpus("synthesize.method=kmeans", "filter.corpus=true") is True
    assert _corpus("synthesize.method=auto", "filter.corpus=false") is False
    run_id = lambda *o: load_config(None, list(o)).run_id()  # noqa: E731
    assert run_id("synthesize.method=auto") == run_id("synthesize.method=auto",
                                                       "filter.corpus=true")
    assert run_id("synthesize.method=kmeans") == run_id("synthesize.method=kmeans",
                                                        "filter.corpus=false")


def test_learned_labels_or_weights_with_corpus_filtering_off_are_refused() -> None:
    for key in ("synthesize.labels.learn", "synthesize.weights.learn"):
        with pytest.raises(ConfigError, match=f"{key} with filter.corpus: false: a pick that "
                                              "the filter stage drops"):
            load_config(None, ["synthesize.method=kmeans", f"{key}=true", "filter.corpus=false"])
    # no filter on: nothing can drop a pick, so off is fine
    assert _corpus("synthesize.method=kmeans", "synthesize.labels.learn=true",
                   "filter.corpus=false", "filter.exact_dedup=false",
                   "filter.contamination.enabled=false") is False


def test_auto_with_corpus_filtering_off_leaves_the_solved_twins_out() -> None:
    def notes(*overrides: str) -> list[str]:
        cfg = load_config(None, ["synthesize.method=auto", *overrides])
        settings, notes = settings_for(cfg, 300)
        assert (settings.labels is None) == (settings.weights is None)
        return notes

    assert notes() == []
    off = notes("filter.corpus=false")
    assert [n for n in off if n.startswith("weighted recipes left out: filter.corpus is off")]
    assert [n for n in off if n.startswith("labelled recipes left out: filter.corpus is off")]
    assert [n for n in off if n.startswith("filter.corpus is off: the filter stage will")]
    # nothing can drop a pick: the twins stay
    assert notes("filter.corpus=false", "filter.exact_dedup=false",
                 "filter.contamination.enabled=false") == []


def test_a_grid_draws_every_method_from_one_pool() -> None:
    def pools(methods: list[str], **run) -> set[bool]:
        cfg = BenchConfig(datasets=["sst2"], methods=methods, budgets=[5], run=run)
        return {cfg.run_config("sst2", m, 5).filter.corpus for m in methods}

    assert pools(["kmeans", "auto"]) == {True}
    assert pools(["kmeans", "herding"]) == {False}
    assert pools(["kmeans", "herding"], synthesize={"labels": {"learn": True}}) == {True}
    assert pools(["kmeans", "auto"], filter={"corpus": False}) == {False}
