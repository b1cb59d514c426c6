"""The evaluate stage's scoring on real SST-2 rows: every learner through the registry, the
linear probe's numbers unchanged, and one reader of the distilled sets for run and bench."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.linear_model import LogisticRegression

from distill_core.artifacts.schemas import SELECTION_SCHEMA
from distill_core.artifacts.store import RunStore
from distill_core.bench.cells import FULL, Cell, RunData
from distill_core.config import load_config
from distill_core.evaluate import (
    EvaluationData,
    EvaluationPlan,
    FeaturePool,
    count_fits,
    evaluate_selection,
    learner_data,
    linear_probe,
    summarize_scores,
)
from distill_core.evaluate.soft_probe import soft_label_probe
from distill_core.generate.features import GeneratedFeatures, generated_features
from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.learners import LearnerSpec
from distill_core.report import score_rows
from distill_core.signals.embeddings import embed_corpus, split_features, vectors_array
from distill_core.synthesize.base import select_per_class

SEEDS = [0, 1]
PER_CLASS = 4
# Rows a generator might have written: they are in the distilled sets but not in the corpus.
GENERATED = [("an utterly charming , funny and moving film .", 1),
             ("a dull , lifeless and badly acted mess .", 0)]


def _distilled(train: pa.Table, train_x: np.ndarray, soft: np.ndarray) -> pa.Table:
    """k-means picks per seed; replicate 1 weighted; a generated row of each class in each."""
    y = train.column("label_id").to_numpy()
    rows = []
    for replicate, seed in enumerate(SEEDS):
        picked = select_per_class("kmeans", train_x, y, PER_CLASS, seed)
        for rank, i in enumerate(picked.indices.tolist()):
            row = train.slice(i, 1).to_pylist()[0]
            rows.append({**row, "replicate": replicate, "parent_ids": [row["example_id"]],
                         "method": "kmeans", "run_id": "t", "seed": seed, "rank": rank,
                         "score": 0.0, "weight": 1.0 + replicate * (rank % 2),
                         "soft_label": soft[i].tolist()})
        for j, (text, label_id) in enumerate(GENERATED):
            rows.append({"example_id": f"gen-{j}", "replicate": replicate, "text": text,
                         "text_pair": None, "label": ["negative", "positive"][label_id],
                         "label_id": label_id, "parent_ids": [], "method": "kmeans",
                         "run_id": "t", "seed": seed, "rank": PER_CLASS + j, "score": 0.0,
                         "weight": 1.0, "soft_label": np.eye(2)[label_id].tolist()})
    return pa.Table.from_pylist([{f: r.get(f) for f in SELECTION_SCHEMA.names} for r in rows],
                                schema=SELECTION_SCHEMA)


@pytest.fixture(scope="module")
def run_dir(slice_dir: Path, encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with real ingest, signals, generate and filter artifacts of an SST-2 slice."""
    ingested = ingest_dataset(resolve_dataset("sst2"), slice_dir)
    corpus = ingested.corpus
    store = RunStore(tmp_path_factory.mktemp("runs"), "eval-slice")

    def encode(texts):
        return encoder.encode(texts, 64)

    embeddings = embed_corpus(corpus, encode)
    train, train_x = split_features(corpus, embeddings, "train")
    teacher = LogisticRegression(max_iter=2000).fit(train_x, train.column("label_id").to_numpy())
    store.write_stage("ingest", corpus, {"label_names": ingested.label_names})
    store.write_stage("signals", embeddings, {})
    generated_x = encode([t for t, _ in GENERATED])
    store.write_stage("generate", pa.table({
        "example_id": [f"gen-{j}" for j in range(len(GENERATED))],
        "label_id": pa.array([label for _, label in GENERATED], pa.int32()),
        "embedding": vectors_array(generated_x),
        "teacher_prob": teacher.predict_proba(generated_x).tolist()}), {})
    store.write_stage("filter", _distilled(train, train_x, teacher.predict_proba(train_x)), {})
    return store.root


@pytest.fixture(scope="module")
def stage_data(run_dir: Path) -> EvaluationData:
    """What the evaluate stage hands `evaluate_selection`, built from the run's tables."""
    store = RunStore.open(run_dir)
    corpus, embeddings = store.read("ingest"), store.read("signals")
    train, train_x = split_features(corpus, embeddings, "train")
    evaluation, eval_x = split_features(corpus, embeddings, "eval")
    return EvaluationData(FeaturePool(train, train_x, generated_features(store)),
                          learner_data(evaluation, eval_x), 2, store.read("filter"))


def _plan(learners: list[LearnerSpec], baselines: tuple[str, ...] = ("random", "full")
          ) -> EvaluationPlan:
    return EvaluationPlan("kmeans", PER_CLASS, SEEDS, learners, list(baselines))


def _pre_registry_scores(data: EvaluationData, generated: GeneratedFeatures) -> list[tuple]:
    """The probe fits as `evaluate_selection` made them before the registry, in its order:
    pooled features and labels indexed by example id, `linear_probe` / `soft_label_probe`."""
    train, train_x = data.pool.train, data.pool.train_x
    train_y = train.column("label_id").to_numpy()
    position = {e: i for i, e in enumerate(train.column("example_id").to_pylist())}
    pool_x = generated.extend(position, train_x)
    pool_y = np.concatenate([train_y, generated.y.astype(train_y.dtype)])
    eval_x, eval_y, labels = data.evaluation.x, data.evaluation.y, [0, 1]
    out = []
    for replicate, seed in enumerate(SEEDS):
        subset = data.distilled.filter(pc.equal(data.distilled.column("replicate"), replicate))
        index = np.fromiter((position[e] for e in subset.column("example_id").to_pylist()),
                            dtype=np.int64)
        weights = subset.column("weight").to_numpy()
        weights = None if np.allclose(weights, 1.0) else weights
        out.append(("distilled", replicate, linear_probe(
            pool_x[index], pool_y[index], eval_x, eval_y, labels, 1.0, 2000,
            sample_weight=weights)))
        targets = np.asarray(subset.column("soft_label").to_pylist(), dtype=np.float64)
        out.append(("distilled_soft", replicate, soft_label_probe(
            pool_x[index], targets, eval_x, eval_y, labels, 1.0, 1.0, sample_weight=weights)))
        picked = select_per_class("random", train_x, train_y, PER_CLASS, seed)
        out.append(("random", replicate, linear_probe(
            pool_x[picked.indices], pool_y[picked.indices], eval_x, eval_y, labels, 1.0, 2000)))
    out.append(("full", None, linear_probe(pool_x[np.arange(len(train_x))],
                                            pool_y[np.arange(len(train_x))], eval_x, eval_y,
                                            labels, 1.0, 2000)))
    return [(setting, replicate, s.accuracy, s.macro_f1, s.n_train)
            for setting, replicate, s in out]


def test_default_linear_probe_scores_equal_the_pre_registry_fits(run_dir, stage_data) -> None:
    learners = load_config(None, []).evaluate.learner_specs(temperature=1.0)
    assert [spec.label() for spec in learners] == ["linear_probe"]
    ticks: list[str] = []
    scores = evaluate_selection(stage_data, _plan(learners), ticks.append)
    got = [(r["setting"], r["replicate"], r["accuracy"], r["macro_f1"], r["n_train"])
           for r in scores.to_pylist()]
    expected = _pre_registry_scores(stage_data, generated_features(RunStore.open(run_dir)))
    assert got == expected  # exact: same rows, same fits, same order
    assert set(scores.column("learner").to_pylist()) == {"linear_probe"}
    assert len(ticks) == count_fits(stage_data, _plan(learners)) == scores.num_rows == 7
    assert scores.column("n_train").to_pylist()[0] == 2 * PER_CLASS + len(GENERATED)


def test_bench_and_evaluate_train_on_the_same_rows(run_dir, stage_data) -> None:
    bench = RunData(str(run_dir))

    def cell(method: str, replicate: int | None, labels: str) -> Cell:
        return Cell("sst2", method, PER_CLASS, "linear_probe", 0, replicate, labels,
                    str(run_dir), "k")

    assert bench.data.n_labels == stage_data.n_labels
    assert bench.evaluation.texts == stage_data.evaluation.texts
    np.testing.assert_array_equal(bench.evaluation.x, stage_data.evaluation.x)
    for replicate in range(len(SEEDS)):
        ours = stage_data.pool.replicate(stage_data.distilled, replicate)
        for labels, expected in (("hard", ours.hard()), ("soft", ours)):
            theirs = bench.training_set(cell("kmeans", replicate, labels))
            assert theirs.data.texts == expected.data.texts
            assert theirs.data.texts[-2:] == [t for t, _ in GENERATED]
            np.testing.assert_array_equal(theirs.data.x, expected.data.x)
            np.testing.assert_array_equal(theirs.data.y, expected.data.y)
            for a, b in ((theirs.weights, expected.weights), (theirs.soft, expected.soft)):
                assert (a is None) == (b is None)
                if a is not None:
                    np.testing.assert_array_equal(a, b)
        assert ours.soft is not None and (ours.weights is None) == (replicate == 0)
    full = bench.training_set(cell(FULL, None, "hard"))
    np.testing.assert_array_equal(full.data.x, stage_data.pool.full().data.x)


def test_every_configured_learner_scores_every_replicate_and_baseline(stage_data) -> None:
    cfg = load_config(None, ["evaluate.learners=[linear_probe, {kind: finetune, steps: 2, "
                             "batch_size: 8, max_length: 32, soft: false}]", "run.seeds=[0, 1]",
                             "synthesize.method=kmeans", f"synthesize.per_class={PER_CLASS}"])
    plan = EvaluationPlan.from_config(cfg)
    assert plan == _plan(cfg.evaluate.learner_specs(cfg.teacher.temperature))
    ticks: list[str] = []
    scores = evaluate_selection(stage_data, plan, ticks.append)
    settings = {}
    for row in scores.to_pylist():
        settings.setdefault(row["learner"], []).append(row["setting"])
    per_replicate = ["distilled", "distilled_soft", "random"]
    assert settings["linear_probe"] == per_replicate * 2 + ["full"]
    assert settings["finetune"] == ["distilled", "random"] * 2 + ["full"]  # soft: false
    assert len(ticks) == count_fits(stage_data, plan) == scores.num_rows == 12
    tuned = scores.filter(pc.equal(scores.column("learner"), "finetune")).to_pylist()
    assert all(0 <= r["accuracy"] <= 1 and "final training loss" in r["note"] for r in tuned)
    summary = summarize_scores(scores)
    assert [(s["learner"], s["setting"]) for s in summary][4:] == [
        ("finetune", "distilled"), ("finetune", "random"), ("finetune", "full")]
    labels = [row[0] for row in score_rows(summary)]
    assert "kmeans (distilled) [finetune]" in labels and "full [linear_probe]" in labels
    assert "kmeans (distilled)" in [row[0] for row in score_rows(summary[:4])]  # one learner


def test_probe_c_cv_is_chosen_on_each_training_set_alone(stage_data) -> None:
    """`C: cv`: every fit (distilled, soft, random, full) names the C its own training rows
    chose, and scrambling the evaluation labels changes no choice (it never sees them)."""
    cv = [LearnerSpec(kind="linear_probe", C="cv")]
    scores = evaluate_selection(stage_data, _plan(cv), lambda _: None).to_pylist()
    notes = [r["note"] for r in scores]
    assert all("-fold cv on" in n for n in notes), notes
    full = next(r for r in scores if r["setting"] == "full")
    assert "on 2000 rows" in full["note"] or f"on {full['n_train']} rows" in full["note"]
    shuffled_y = np.random.default_rng(0).permutation(stage_data.evaluation.y)
    scrambled = replace(stage_data, evaluation=replace(stage_data.evaluation, y=shuffled_y))
    again = evaluate_selection(scrambled, _plan(cv), lambda _: None).to_pylist()
    assert [r["note"].split(" (acc")[0] for r in again] == [n.split(" (acc")[0] for n in notes]
    assert [r["accuracy"] for r in again] != [r["accuracy"] for r in scores]
