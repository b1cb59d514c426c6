"""Both generative methods through the real stages on an SST-2 slice with a tiny local decoder:
every generated line is accounted for, every distilled row traces back to real rows, a rerun
resumes, and the distilled rows are scored with their own features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from distill_core.audit import RunAudit
from distill_core.config import RunConfig, load_config
from distill_core.methods.generative import class_gradients
from distill_core.pipeline.inputs import selection_pool, teacher_view
from distill_core.pipeline.stage import StageContext
from distill_core.report import build_report

PARSE_REASONS = {"wrong_format", "empty_text", "prompt_echo", "repeated_generation",
                 "too_short", "too_long", "truncated"}
CHOICE_REASONS = {"teacher_inconsistent", "not_best_of_n", "near_duplicate_generation",
                  "not_selected"}


def statuses_of(outcomes) -> list[str]:
    return [o.status for o in outcomes]


def config(slice_dir: Path, decoder: Path, method: str, *extra: str) -> RunConfig:
    return load_config(None, [
        f"data.data_dir={slice_dir}", "run.seeds=[0,1]", "synthesize.per_class=3",
        f"synthesize.method={method}", f"run.name={method}", f"generate.model={decoder}",
        "generate.max_new_tokens=12", "generate.batch_size=8", "generate.shard_size=5",
        "generate.min_words=1", "generate.teacher_tau=0.0", *extra])


@pytest.fixture(scope="module")
def dilm_run(slice_dir: Path, tiny_decoder: Path, run_stages, tmp_path_factory):
    cfg = config(slice_dir, tiny_decoder, "dilm", "synthesize.dilm.train_steps=25",
                 "synthesize.dilm.train_batch_size=8", "synthesize.dilm.lora_r=4",
                 "synthesize.dilm.candidates_per_class=10")
    runs = tmp_path_factory.mktemp("runs")
    store, outcomes = run_stages(cfg, runs)
    return cfg, runs, store, statuses_of(outcomes)


def test_dilm_accounts_for_every_generated_line(dilm_run) -> None:
    cfg, _, store, statuses = dilm_run
    assert statuses == ["computed"] * 7
    generate = store.manifest("generate")
    counts = generate["counts"]
    assert counts["answers"] == counts["prompts"] == 2 * 2 * 10  # replicates x classes x n
    assert counts["rows_in"] == counts["rows_out"] + counts["rows_rejected"] >= counts["answers"]
    assert set(counts["rejects_by_reason"]) <= PARSE_REASONS
    assert np.mean(generate["generator"]["loss_last5"]) < np.mean(
        generate["generator"]["loss_first5"])  # the generator learnt something
    assert 0 < generate["generator"]["trainable_parameters"] < 30_000  # LoRA adapters only
    synth = store.manifest("synthesize")["counts"]
    assert synth["rows_in"] == counts["rows_out"]
    assert set(synth["rejects_by_reason"]) <= CHOICE_REASONS
    audit = RunAudit(store.root)
    assert all(stage["balanced"] for stage in audit.funnel())


def test_dilm_rows_trace_back_to_real_rows_of_their_class(dilm_run) -> None:
    _, _, store, _ = dilm_run
    distilled = store.read("filter")
    assert distilled.num_rows > 0
    for replicate in (0, 1):
        rows = distilled.filter(pc.equal(distilled.column("replicate"), replicate))
        for label in ("negative", "positive"):
            assert rows.filter(pc.equal(rows.column("label"), label)).num_rows <= 3
    train = store.read("ingest")
    label_of = dict(zip(train.column("example_id").to_pylist(),
                        train.column("label").to_pylist(), strict=True))
    row = distilled.to_pylist()[0]
    assert len(row["parent_ids"]) == 3
    assert {label_of[p] for p in row["parent_ids"]} == {row["label"]}
    lineage = RunAudit(store.root).lineage(row["example_id"])
    assert lineage["generated"] and lineage["generated"][0]["prompt"].startswith("label: ")
    assert {s["example_id"] for s in lineage["sources"]} == set(row["parent_ids"])


def test_dilm_is_scored_and_a_rerun_resumes(dilm_run, run_stages) -> None:
    cfg, runs, store, _ = dilm_run
    scores = store.read("evaluate")
    distilled = scores.filter(pc.equal(scores.column("setting"), "distilled")).to_pylist()
    assert len(distilled) == 2 and all(0 <= s["accuracy"] <= 1 for s in distilled)
    assert {s["n_train"] for s in distilled} == {
        n for n in (store.read("filter").filter(pc.equal(store.read("filter").column(
            "replicate"), r)).num_rows for r in (0, 1))}
    report = build_report(store.root)
    assert "## Generation" in report and "- generator: " in report and "dilm" in report
    assert statuses_of(run_stages(cfg, runs)[1]) == ["resumed"] * 7
    # A stricter parse (another run) reuses the generator and the sampled parts.
    stricter = cfg.model_copy(update={"generate": cfg.generate.model_copy(
        update={"min_words": 4})})
    before = store.read("generate", rejects=True).num_rows
    again, outcomes = run_stages(stricter, runs)
    assert again.root != store.root and statuses_of(outcomes)[3] == "computed"
    assert len(list((runs / ".cache" / "generator").iterdir())) == 1
    assert len(list((runs / ".cache" / "generate_parts").iterdir())) == 1
    assert again.manifest("generate")["generator"] == store.manifest("generate")["generator"]
    assert again.read("generate", rejects=True).num_rows >= before
    # Another choice among the same samples (a stricter teacher threshold): the samples come
    # from the parts cache, and the choice rejects more of them as teacher-inconsistent.
    choosier = cfg.model_copy(update={"generate": cfg.generate.model_copy(
        update={"teacher_tau": 0.6})})
    third, _ = run_stages(choosier, runs)
    assert third.root not in (store.root, again.root)
    assert len(list((runs / ".cache" / "generate_parts").iterdir())) == 1
    inconsistent = [s.manifest("synthesize")["counts"]["rejects_by_reason"].get(
        "teacher_inconsistent", 0) for s in (store, third)]
    assert inconsistent[0] == 0 < inconsistent[1]  # tau 0 keeps every row
    # A damaged generator in the cache is trained again (and said so), not loaded.
    (generator,) = (runs / ".cache" / "generator").iterdir()
    weights = generator / "model.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[-1] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    fourth, _ = run_stages(cfg.model_copy(update={"generate": cfg.generate.model_copy(
        update={"min_words": 2})}), runs)
    assert "changed since it was written" in fourth.manifest("generate")[
        "generator_cache_dropped"]
    assert fourth.manifest("generate")["generator"]["loss_first5"] == store.manifest(
        "generate")["generator"]["loss_first5"]  # the same seeded training again


def test_llm_synth_prompts_show_representative_rows_and_every_line_is_accounted_for(
        slice_dir: Path, tiny_decoder: Path, run_stages, tmp_path: Path) -> None:
    cfg = config(slice_dir, tiny_decoder, "llm_synth", "synthesize.llm_synth.samples_per_slot=2",
                 "synthesize.llm_synth.shots=3")
    store, outcomes = run_stages(cfg, tmp_path)
    assert statuses_of(outcomes) == ["computed"] * 7
    generate = store.manifest("generate")["counts"]
    assert generate["prompts"] == 2 * 2 * 3 and generate["answers"] == 2 * generate["prompts"]
    assert generate["rows_in"] == generate["rows_out"] + generate["rows_rejected"]
    rejects = store.read("generate", rejects=True)
    assert set(rejects.column("reason").to_pylist()) <= PARSE_REASONS
    assert all(d.startswith("r") for d in rejects.column("detail").to_pylist())
    assert all(stage["balanced"] for stage in RunAudit(store.root).funnel())
    # What was generated is exactly what the model wrote, tied to a prompt of 3 real rows.
    generated = store.read("generate")
    assert generated.num_rows > 0
    for row in generated.to_pylist()[:5]:
        assert row["text"] in row["answer"] and len(row["parent_ids"]) == 3
    if store.read("filter").num_rows == 0:  # a random tiny model may write nothing usable
        assert store.manifest("synthesize")["class_shortfall"]


def test_dilm_gradient_ranking_picks_within_each_cluster(dilm_run) -> None:
    """On 60 real training rows per class standing in for samples (real embeddings, the run's
    teacher probabilities), so that k-means and the ranking have clusters to work on."""
    import pyarrow as pa

    from distill_core.generate.candidates import choose_generated, cluster_chooser

    cfg, _, store, _ = dilm_run
    train, train_x = selection_pool(cfg, store)
    probs = teacher_view(store, train.column("example_id").to_pylist(), 1.0).soft_labels
    rows = np.concatenate([np.flatnonzero(train.column("label_id").to_numpy() == c)[:60]
                           for c in (0, 1)])
    pool = train.take(pa.array(rows))
    n = len(rows)
    generated = pa.table({
        "example_id": pool.column("example_id"), "replicate": pa.array([0] * n, pa.int32()),
        "text": pool.column("text"), "text_pair": pool.column("text_pair"),
        "label": pool.column("label"), "label_id": pool.column("label_id"),
        "parent_ids": pa.array([[e] for e in pool.column("example_id").to_pylist()]),
        "method": pa.array(["dilm"] * n), "prompt_id": pa.array([f"p{i}" for i in range(n)]),
        "slot": pa.array(list(range(n)), pa.int32()),
        "embedding": pa.array(list(train_x[rows]), pa.list_(pa.float32())),
        "teacher_prob": pa.array(list(probs[rows].astype(np.float32)), pa.list_(pa.float32())),
    })
    gradients = class_gradients(StageContext(cfg, store), train, train_x)
    assert set(gradients) == {0, 1} and gradients[0].shape == (2, train_x.shape[1])

    def choose(**update):
        options = cfg.synthesize.dilm.model_copy(update=update)
        chooser = cluster_chooser(cfg.generate.model_copy(update={"teacher_tau": 0.5}),
                                  options, 3, gradients)
        return choose_generated(generated, "dilm", 3, [0], "r", chooser, [0, 1])

    plain = choose()
    nearest = plain.candidates.column("example_id").to_pylist()
    assert len(nearest) == 6 and plain.counts["rejects_by_reason"]["not_selected"] > 0
    # One contender per cluster: the gradient ranking can only pick the nearest member.
    assert choose(grad_rank=True, grad_rank_pool=1).candidates.column(
        "example_id").to_pylist() == nearest
    ranked = choose(grad_rank=True, grad_rank_pool=10)
    scores = ranked.candidates.column("score").to_pylist()
    assert len(scores) == 6 and all(-1 <= s <= 1 for s in scores)  # gradient cosines
    assert ranked.candidates.column("example_id").to_pylist() != nearest
    assert ranked.counts["rows_in"] == ranked.counts["rows_out"] + ranked.counts["rows_rejected"]
