"""`synthesize.method: auto` on real SST-2 slices: the choice is made from training rows
only (the rows it read are the training pool's, and an evaluation split with every label
flipped leaves every cross-validated number unchanged), it is the same for a seed, and a
run with it goes end to end with the chosen method's lineage and the choice in the report."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pyarrow.compute as pc
import pytest
from threadpoolctl import threadpool_limits

from distill_core.audit import RunAudit
from distill_core.config import load_config
from distill_core.methods.auto import (
    AutoRows,
    ids_digest,
    probe_accuracy,
    settings_for,
    teacher_p_label,
)
from distill_core.pipeline.stage import StageContext
from distill_core.report import build_report
from distill_core.synthesize.auto_cv import (
    consistent_rows,
    cross_validate,
    recipe_parts,
    serial_folds,
)
from distill_core.synthesize.fold_workers import (
    fold_map,
    fold_workers,
    release_fold_workers,
    worker_settings,
)
from distill_core.synthesize.kmeans_prototypes import available_cores

PER_CLASS = 4


def _config(data_dir: Path, *overrides: str):
    return load_config(None, [f"data.data_dir={data_dir}", "run.seeds=[0,1]", "run.name=auto",
                              "synthesize.method=auto", f"synthesize.per_class={PER_CLASS}",
                              "synthesize.auto.repeats=1", *overrides])


@pytest.fixture(scope="module")
def flipped_dir(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SST-2 slices with every evaluation label flipped and every evaluation text changed
    (a new texts hash: with the texts alone unchanged, the signals stage's cache, keyed by the
    texts, would restore the other run's embeddings under the old example ids)."""
    target = tmp_path_factory.mktemp("flipped") / "sst2_glue"
    target.mkdir()
    (target / "train.tsv").write_bytes((slice_dir / "sst2_glue" / "train.tsv").read_bytes())
    header, *rows = (slice_dir / "sst2_glue" / "dev.tsv").read_text().splitlines()
    flipped = [f"{r.rsplit(chr(9), 1)[0]} !\t{1 - int(r.rsplit(chr(9), 1)[1])}" for r in rows]
    (target / "dev.tsv").write_text("\n".join([header, *flipped]) + "\n")
    return target.parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")  # one folder: the runs share its row cache


WORKERS_AFTER_RUN: list[int] = []  # fold workers alive when the auto run's stages ended


def loky_workers() -> set[int]:
    """This process's joblib (loky) worker processes."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if "popen_loky_posix" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.fixture(scope="module")
def auto_run(slice_dir: Path, runs: Path, run_stages):
    cfg = _config(slice_dir)
    store, _ = run_stages(cfg, runs)
    WORKERS_AFTER_RUN.extend(loky_workers())
    return cfg, store


def test_the_choice_reads_training_rows_only(auto_run, flipped_dir: Path, runs: Path,
                                             run_stages) -> None:
    cfg, store = auto_run
    corpus = store.read("ingest")
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    block = store.manifest("synthesize")["auto"]
    # The sample covers the whole 300-row pool here: the rows read are exactly its rows.
    assert block["cv_rows"] == train.num_rows == 300
    assert block["cv_ids_sha256"] == ids_digest(train.column("example_id").to_pylist())
    # The same run with every evaluation label flipped: not one cross-validated number moves.
    flipped_cfg = _config(flipped_dir, "run.name=auto-flipped")  # data_dir is not in the id
    flipped, _ = run_stages(flipped_cfg, runs, "synthesize")
    eval_ids = lambda s: set(pc.filter(s.read("ingest").column("example_id"),  # noqa: E731
                                       pc.equal(s.read("ingest").column("split"), "eval"))
                             .to_pylist())
    assert not eval_ids(flipped) & eval_ids(store), "the evaluation rows must all differ"
    other = flipped.manifest("synthesize")["auto"]
    for key in ("chosen", "scores", "protocol", "cv_rows", "cv_ids_sha256"):
        assert other[key] == block[key], key
    # And what the loader hands the cross-validation is checked row by row.
    rows = AutoRows(cfg, StageContext(cfg, store))
    rows.features(np.arange(len(rows.pool.label_ids)))
    read = set(rows.loaded.column("example_id").to_pylist())
    assert read == set(train.column("example_id").to_pylist()) and not read & eval_ids(store)


def test_the_choice_is_the_same_for_a_seed(auto_run) -> None:
    cfg, store = auto_run
    cfg = cfg.model_copy(update={"synthesize": cfg.synthesize.model_copy(
        update={"auto": cfg.synthesize.auto.model_copy(update={"max_rows": 150, "folds": 2})})})
    rows = AutoRows(cfg, StageContext(cfg, store))
    settings, _ = settings_for(cfg, len(rows.pool.label_ids))

    def choose(seed: int):
        return cross_validate(rows.pool.label_ids, rows.features, settings, seed,
                              probe_accuracy(cfg, 2), teacher_p_label(cfg, 2))

    first, again, other = choose(0), choose(0), choose(7)
    assert (first.chosen, first.scores) == (again.chosen, again.scores)
    assert first.scores != other.scores  # the seed does draw the folds
    defaults = cfg.synthesize.auto.candidates  # each with its twins (auto.weighted, .labelled)
    assert set(first.scores) == (set(defaults) | {f"{r}+weights" for r in defaults}
                                 | {f"{r}+labels" for r in defaults})
    best = max(s["mean"] for s in first.scores.values())
    assert first.scores[first.chosen]["mean"] == best


def test_folds_in_worker_processes_score_as_in_this_process(auto_run) -> None:
    """The folds run in two worker processes give every recipe the same accuracies, in the
    same order, as the folds run here one after another (one BLAS / OpenMP thread each way,
    k-means' included, so that no sum is split differently on a machine with more cores)."""
    cfg, store = auto_run
    rows = AutoRows(cfg, StageContext(cfg, store))
    settings, _ = settings_for(cfg, len(rows.pool.label_ids))
    settings = replace(settings, params={**settings.params, "kmeans": {
        **settings.params["kmeans"], "threads": 1}})
    worker_pids: list[int] = []

    def choose(run_folds):
        return cross_validate(rows.pool.label_ids, rows.features, settings, 3,
                              probe_accuracy(cfg, 2), teacher_p_label(cfg, 2), run_folds)

    def in_workers(function, jobs):
        def tagged(*job):
            return {**function(*job), "pid": os.getpid()}

        folds = fold_map(2, threads=1)(tagged, jobs)
        worker_pids.extend(fold.pop("pid") for fold in folds)
        return folds

    with threadpool_limits(limits=1):
        here = choose(serial_folds)
    there = choose(in_workers)
    assert (here.chosen, here.scores) == (there.chosen, there.scores)
    assert os.getpid() not in worker_pids and len(worker_pids) == settings.folds
    assert set(worker_pids) <= loky_workers()  # kept until released...
    release_fold_workers()
    assert not set(worker_pids) & loky_workers()  # ...then shut down, their memory freed
    assert fold_workers(None, 9) == min(available_cores(), 9) and fold_workers(1, 9) == 1
    assert fold_workers(None, 1) == 1 and fold_workers(4, 2) == 2
    # in workers k-means keeps to a worker's share of the cores unless set
    shared = worker_settings(settings_for(cfg, 100)[0], 2).params["kmeans"]["threads"]
    assert shared == max(1, available_cores() // 2)
    assert worker_settings(settings, 2).params["kmeans"]["threads"] == 1  # as set
    assert worker_settings(settings_for(cfg, 100)[0], 1).params["kmeans"].get("threads") is None


def test_an_auto_run_end_to_end(auto_run) -> None:
    cfg, store = auto_run
    block = store.manifest("synthesize")["auto"]
    selector, clean, weighted, labelled = recipe_parts(block["chosen"])
    assert block["learned_weights"] == weighted and block["learned_labels"] == labelled
    candidates = store.read("synthesize")
    assert set(candidates.column("method").to_pylist()) == {selector}  # the chosen lineage
    picks = candidates.filter(pc.less(candidates.column("rank"), PER_CLASS))
    reserve = candidates.filter(pc.greater_equal(candidates.column("rank"), PER_CLASS))
    assert set(reserve.column("weight").to_pylist()) <= {1.0}
    if weighted:  # each replicate's picks: weights of mean 1 per class, not all 1
        manifest = store.manifest("synthesize")
        assert set(manifest["learned_weights"]["min_max_by_replicate"]) == {"0", "1"}
        for replicate in (0, 1):
            for label in (0, 1):
                mine = picks.filter(pc.and_(pc.equal(picks.column("replicate"), replicate),
                                            pc.equal(picks.column("label_id"), label)))
                w = mine.column("weight").to_numpy()
                assert len(w) == PER_CLASS and w.mean() == pytest.approx(1.0)
        assert not np.allclose(picks.column("weight").to_numpy(), 1.0)
    if labelled:  # the picks' labels are distributions, not all one-hot; the reserve's one-hot
        assert "learned_labels" in store.manifest("synthesize")
        soft = np.asarray(picks.column("soft_label").to_pylist())
        assert soft.shape == (2 * 2 * PER_CLASS, 2) and np.allclose(soft.sum(axis=1), 1.0)
        assert not np.allclose(soft.max(axis=1), 1.0)
        kept = np.asarray(reserve.column("soft_label").to_pylist())
        assert np.array_equal(kept, np.eye(2)[reserve.column("label_id").to_numpy()])
    assert candidates.column("parent_ids").to_pylist() == [
        [e] for e in candidates.column("example_id").to_pylist()]
    scores = store.read("evaluate").to_pylist()
    assert {r["method"] for r in scores} >= {"auto", "random"}
    report = build_report(store.root)
    assert f"**auto chose `{block['chosen']}`**" in report
    assert ("the score table's `auto+soft` row is this choice's score" in report) == labelled
    for recipe, s in block["scores"].items():
        assert f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}" in report, recipe
        assert len(s["accuracies"]) == block["protocol"]["repeats"] * block["protocol"]["folds"]
    # filter.corpus unset is on for auto: the filters ran before the choice, so the filter
    # stage keeps every pick and the learned weights and labels are the set's own
    assert cfg.filter.corpus and store.manifest("clean") is not None
    assert "filter.corpus is off" not in report
    distilled = store.read("filter")
    assert sorted(zip(distilled.column("replicate").to_pylist(),
                      distilled.column("example_id").to_pylist(), strict=True)) == sorted(
        zip(picks.column("replicate").to_pylist(), picks.column("example_id").to_pylist(),
            strict=True))
    workers = fold_workers(None, block["protocol"]["repeats"] * block["protocol"]["folds"])
    assert block["cv_workers"] == workers
    assert workers > 1 and WORKERS_AFTER_RUN == []  # shut down before the final selection
    assert (f"({workers} worker processes)" in report) == (workers > 1)


def test_auto_notes_the_filters_its_choice_did_not_see() -> None:
    """Contamination after selection swaps chosen rows for picks the cross-validation never
    scored: the choice says so unless the filters run on the corpus first (or are off)."""
    def notes(*overrides: str) -> list[str]:
        return settings_for(load_config(None, ["synthesize.method=auto", *overrides]), 100)[1]

    off = ("filter.corpus=false", "synthesize.auto.weighted=false",
           "synthesize.auto.labelled=false")
    assert [n for n in notes(*off) if n.startswith("filter.corpus is off")]
    assert notes() == notes("filter.corpus=true") == []  # unset: on for auto
    assert notes(*off, "filter.contamination.enabled=false") == []


def test_a_teacher_consistent_choice_keeps_the_funnel(slice_dir: Path, runs: Path,
                                                      run_stages) -> None:
    cfg = _config(slice_dir, "synthesize.auto.candidates=[tc_herding]")
    store, _ = run_stages(cfg, runs, "synthesize")
    block = store.manifest("synthesize")["auto"]
    assert block["chosen"] in ("tc_herding", "tc_herding+weights")
    assert block["teacher_inconsistent_rows"] > 0
    picked = set(store.read("synthesize").column("example_id").to_pylist())
    # The rows the teacher disputes (p(own label) < tau over the whole pool, less the most
    # confident ones a class keeps to fill its oversampled budget) are never picked.
    rows = AutoRows(cfg, StageContext(cfg, store))
    y = rows.pool.label_ids
    x = rows.features(np.arange(len(y)))
    assert np.all(np.diff(rows.pool.rows.positions) > 0)  # so `loaded` is in pool order
    ids = rows.loaded.column("example_id").to_pylist()
    p_label = teacher_p_label(cfg, 2)(x, y)
    kept = consistent_rows(p_label, y, cfg.synthesize.auto.tau,
                           cfg.synthesize.per_class * cfg.synthesize.oversample)
    disputed = set(ids) - {ids[i] for i in kept}
    assert len(disputed) == block["teacher_inconsistent_rows"]
    assert picked and not picked & disputed
    audit = RunAudit(store.root)
    derived = audit.not_selected()
    manifest = store.manifest("synthesize")
    assert derived == manifest["counts"]["implicit_rejects"]["not_selected"]
    assert manifest["counts"]["rows_in"] == 300 * len(cfg.run.seeds) == (
        manifest["counts"]["rows_out"] + manifest["counts"]["rows_rejected"])


def test_what_the_choice_depends_on_is_in_the_run_id() -> None:
    base = load_config(None, ["synthesize.method=auto"])
    for changed in ("synthesize.kmeans.n_init=5", "synthesize.auto.folds=5",
                    "synthesize.auto.candidates=[herding,kmeans]", "teacher.C=10"):
        assert load_config(None, ["synthesize.method=auto", changed]).run_id() != base.run_id()
    for unused_key in ("synthesize.el2n.prune_hardest=0.3", "compute.cv_workers=1"):
        unused = load_config(None, ["synthesize.method=auto", unused_key])
        assert unused.run_id() == base.run_id(), unused_key
    # facility_location's options count only when one of its recipes competes
    fl = "synthesize.facility_location.demand_rows=10"
    assert load_config(None, ["synthesize.method=auto", fl]).run_id() == base.run_id()
    with_fl = ["synthesize.method=auto", "synthesize.auto.candidates=[herding,facility_location]"]
    assert (load_config(None, with_fl).run_id()
            != load_config(None, [*with_fl, fl]).run_id())
    # bilevel competes by default: its options count, until no bilevel recipe competes
    bl = "synthesize.bilevel.shortlist=8"
    assert load_config(None, ["synthesize.method=auto", bl]).run_id() != base.run_id()
    without = ["synthesize.method=auto", "synthesize.auto.candidates=[herding,tc_herding]"]
    assert (load_config(None, without).run_id()
            == load_config(None, [*without, bl]).run_id())
    # the weights' settings count while weighted recipes compete (the default), not after
    steps = "synthesize.weights.steps=5"
    assert load_config(None, ["synthesize.method=auto", steps]).run_id() != base.run_id()
    unweighted = ["synthesize.method=auto", "synthesize.auto.weighted=false"]
    assert load_config(None, unweighted).run_id() != base.run_id()
    assert (load_config(None, unweighted).run_id()
            == load_config(None, [*unweighted, steps]).run_id())
    # the labels' settings likewise while labelled recipes compete (the default)
    rows = "synthesize.labels.target_rows=500"
    assert load_config(None, ["synthesize.method=auto", rows]).run_id() != base.run_id()
    unlabelled = ["synthesize.method=auto", "synthesize.auto.labelled=false"]
    assert (load_config(None, unlabelled).run_id()
            == load_config(None, [*unlabelled, rows]).run_id())


def test_facility_location_recipes_compete_when_asked_and_stay_in_memory(auto_run) -> None:
    cfg, store = auto_run
    cfg = cfg.model_copy(update={"synthesize": cfg.synthesize.model_copy(update={
        "auto": cfg.synthesize.auto.model_copy(update={
            "candidates": ["herding", "facility_location", "tc_facility_location"],
            "max_rows": 150, "folds": 2})})})
    rows = AutoRows(cfg, StageContext(cfg, store))
    settings, notes = settings_for(cfg, len(rows.pool.label_ids))
    assert settings.params["facility_location"] == cfg.synthesize.facility_location.params()
    choice = cross_validate(rows.pool.label_ids, rows.features, settings, 0,
                            probe_accuracy(cfg, 2), teacher_p_label(cfg, 2))
    plain = {"herding", "facility_location", "tc_facility_location"}
    assert set(choice.scores) == (plain | {f"{r}+weights" for r in plain}
                                  | {f"{r}+labels" for r in plain})
    assert len({tuple(choice.scores[r]["accuracies"]) for r in plain}) == 3  # three sets
    # over the in-memory limit every recipe stays: one that holds the pool draws from a
    # sample of it (tests/synthesize/test_pool_sample.py), and a note says so
    big, notes = settings_for(cfg, 2_000_000)
    assert big.candidates == settings.candidates
    assert big.weights is not None and big.labels is not None
    assert notes == [n for n in notes if "left out" not in n]
    assert any("2000000 rows, over the in-memory limit" in n and "sample" in n for n in notes)


def test_recipes_made_for_the_probe_are_left_out_when_another_learner_trains(auto_run) -> None:
    """span_pursuit and the labelled twins are solved for the linear probe on frozen
    features; a run that also fine-tunes the encoder does not choose among them."""
    cfg, _ = auto_run
    default, notes = settings_for(cfg, 300)
    assert "span_pursuit" in default.candidates and default.labels is not None
    assert not any("evaluate.learners" in n for n in notes)
    tuned = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={
        "learners": ["finetune", "linear_probe"]})})
    settings, notes = settings_for(tuned, 300)
    assert settings.candidates == [c for c in default.candidates if c != "span_pursuit"]
    assert settings.labels is None and settings.weights is not None
    assert ("span_pursuit left out: its rows are chosen for soft labels learned for the "
            "linear probe, and evaluate.learners also trains finetune") in notes
    assert ("labelled recipes left out: their labels are solved for the linear probe, and "
            "evaluate.learners also trains finetune") in notes


def test_a_teacher_consistent_pool_keeps_enough_rows_per_class() -> None:
    p = np.array([0.9, 0.2, 0.95, 0.5, 0.1, 0.3, 0.85, 0.4])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert consistent_rows(p, y, 0.8, 1).tolist() == [0, 2, 6]
    # each class is short of 3 confident rows: its next most confident ones fill it up
    assert consistent_rows(p, y, 0.8, 3).tolist() == [0, 2, 3, 5, 6, 7]


def test_a_bilevel_run_refines_herdings_picks_on_real_rows(slice_dir: Path, runs: Path,
                                                          run_stages) -> None:
    """bilevel through the pipeline (the auto runs' caches): its own lineage, the budget per
    class and seed, and on real SST-2 rows a set that is not simply herding's."""
    sets = {}
    for method in ("herding", "bilevel"):
        cfg = _config(slice_dir, f"synthesize.method={method}")
        store, _ = run_stages(cfg, runs, "synthesize")
        rows = store.read("synthesize").to_pylist()
        assert {r["method"] for r in rows} == {method}
        picks = [r for r in rows if r["rank"] < PER_CLASS]
        for seed in cfg.run.seeds:
            assert len([r for r in picks if r["seed"] == seed]) == 2 * PER_CLASS
        sets[method] = {(r["seed"], r["example_id"]) for r in picks}
    assert sets["bilevel"] != sets["herding"]
