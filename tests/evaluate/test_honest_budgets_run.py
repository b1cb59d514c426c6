"""A run on real SST-2 slices whose contamination filter drops picks: the budget is refilled from
the method's ranking, the baselines meet the same filters, a shortfall shows in the score table;
a repeated evaluation row is kept, scored and traced without multiplying anything."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from distill_core.audit import RunAudit
from distill_core.config import load_config
from distill_core.filter.contamination import contamination_filter
from distill_core.filter.stage import clean_corpus
from distill_core.markdown import score_rows
from distill_core.pipeline.filter_context import filter_context
from distill_core.report import build_report

PER_CLASS = 4
THRESHOLD = 0.5  # cosine to an evaluation text that contaminates: drops ~14% of the slice


@pytest.fixture(scope="module")
def data_dir(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SST-2 slices, the evaluation split's first row repeated at its end."""
    target = tmp_path_factory.mktemp("dup-eval")
    (target / "sst2_glue").mkdir()
    for name in ("train.tsv", "dev.tsv"):
        lines = (slice_dir / "sst2_glue" / name).read_bytes().splitlines(keepends=True)
        (target / "sst2_glue" / name).write_bytes(
            b"".join(lines + ([lines[1]] if name == "dev.tsv" else [])))
    return target


def _config(data_dir: Path, *overrides: str):
    return load_config(None, [f"data.data_dir={data_dir}", "run.seeds=[0,1]", "run.name=honest",
                              f"synthesize.per_class={PER_CLASS}",
                              f"filter.contamination.embedding_threshold={THRESHOLD}",
                              *overrides])


@pytest.fixture(scope="module")
def refilled(data_dir: Path, tmp_path_factory: pytest.TempPathFactory, run_stages):
    runs = tmp_path_factory.mktemp("runs")
    store, _ = run_stages(_config(data_dir), runs)
    return store, runs


def test_dropped_picks_are_refilled_in_rank_order(refilled) -> None:
    store, _ = refilled
    rejects = store.read("filter", rejects=True).to_pylist()
    contaminated = [r for r in rejects if r["reason"].startswith("contaminated")]
    assert contaminated, "the threshold must drop picks for this test to mean anything"
    candidates = store.read("synthesize").to_pylist()
    kept = store.read("filter").to_pylist()
    dropped = {(r["replicate"], r["example_id"]) for r in rejects
               if r["reason"] != "over_budget"}
    for replicate in (0, 1):
        for label in ("negative", "positive"):
            ranking = sorted((c for c in candidates if c["replicate"] == replicate
                              and c["label"] == label), key=lambda c: c["rank"])
            assert len(ranking) == 3 * PER_CLASS  # oversample 3 by default
            survivors = [c["example_id"] for c in ranking
                         if (replicate, c["example_id"]) not in dropped]
            ours = [r["example_id"] for r in kept if r["replicate"] == replicate
                    and r["label"] == label]
            assert sorted(ours) == sorted(survivors[:PER_CLASS])
    assert store.manifest("filter")["shortfall"] == {}
    assert Counter(r["reason"] for r in rejects)["over_budget"] == \
        len(candidates) - len(kept) - len(dropped)


def test_baselines_are_filtered_and_nothing_is_short(refilled) -> None:
    store, _ = refilled
    summary = {s["setting"]: s for s in store.manifest("evaluate")["summary"]}
    assert summary["distilled"]["short"] == [0, 0] == summary["random"]["short"]
    assert summary["random"]["n_train"] == 2 * PER_CLASS
    corpus = store.read("ingest")
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    section = load_config(None, [f"filter.contamination.embedding_threshold={THRESHOLD}",
                                 "filter.exact_dedup=false"]).filter
    clean = clean_corpus(train, section, filter_context(store, False))
    assert 0 < clean.rejects.num_rows < train.num_rows
    assert summary["full"]["n_train"] == clean.kept.num_rows  # full: after contamination
    rows = {r[0]: r for r in score_rows(store.manifest("evaluate")["summary"])}
    assert rows["kmeans (distilled)"][3] == "0" and rows["full"][3] == "-"
    assert "| short |" in build_report(store.root)


def test_without_a_reserve_the_shortfall_is_recorded_and_shown(refilled, data_dir: Path,
                                                               run_stages) -> None:
    _, runs = refilled
    store, _ = run_stages(_config(data_dir, "synthesize.oversample=1", "run.name=noreserve"),
                          runs)
    short = store.manifest("filter")["shortfall"]
    assert short, "kmeans picks were contaminated above; with no reserve they are missing"
    for classes in short.values():
        for entry in classes.values():
            assert entry["kept"] < entry["budget"] == PER_CLASS == entry["ranked"]
    missing = [sum(PER_CLASS - e["kept"] for e in short.get(str(r), {}).values())
               for r in (0, 1)]
    summary = {s["setting"]: s for s in store.manifest("evaluate")["summary"]}
    assert summary["distilled"]["short"] == missing
    cell = next(r for r in score_rows(store.manifest("evaluate")["summary"])
                if r[0] == "kmeans (distilled)")[3]
    assert cell == (str(max(missing)) if min(missing) == max(missing)
                    else f"{min(missing)}–{max(missing)}")
    assert "Classes below the budget" in build_report(store.root)


def test_repeated_eval_row_is_scored_and_traced_once_per_row(refilled, data_dir: Path) -> None:
    store, _ = refilled
    ingest = store.manifest("ingest")
    dev_rows = len((data_dir / "sst2_glue" / "dev.tsv").read_bytes().splitlines()) - 1
    assert ingest["eval_duplicates"] == 1
    assert store.manifest("evaluate")["counts"]["eval_rows"] == dev_rows
    assert "1 repeated rows kept" in build_report(store.root)
    corpus = store.read("ingest")
    evaluation = corpus.filter(pc.equal(corpus.column("split"), "eval"))
    repeated = evaluation.column("example_id")[0].as_py()
    audit = RunAudit(store.root)
    assert all(f["balanced"] for f in audit.funnel())
    lineage = audit.lineage(repeated)
    assert [s["split"] for s in lineage["sources"]] == ["eval", "eval"]
    # the contamination filter sees both copies and still drops by text, once per row
    context = filter_context(store, False)
    assert context.eval_texts.count(evaluation.column("text")[0].as_py()) == 2
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    drops = contamination_filter(context.input_for(train, np.zeros(train.num_rows, int)),
                                 13, THRESHOLD)
    assert len({d.row for d in drops}) == len(drops)
