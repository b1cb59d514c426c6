"""A learned method through the pipeline's stages on a real SST-2 slice, with a tiny encoder (a
2-layer BERT built from a config, MiniLM's tokenizer) as the learner: the learn stage's tensors
and decoded rows, lineage, the funnel, embeds_finetune, the report; resume after a SIGKILL in
a real subprocess; a bad option as one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.compute as pc
import pytest
import torch

from distill_core.audit import RunAudit
from distill_core.config import load_config
from distill_core.learned.artifact import read_learned
from distill_core.methods.learned import state_path
from distill_core.report import write_report

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded tiny BERT and MiniLM's tokenizer saved as a model folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from distill_core.signals.models import resolve_model_path

    folder = tmp_path_factory.mktemp("tiny-encoder")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


def overrides(slice_dir: Path, model: Path, *extra: str) -> list[str]:
    key = "synthesize.learned_meta"
    return [f"data.data_dir={slice_dir}", "synthesize.method=learned_meta",
            "synthesize.per_class=2", f"{key}.model={model}", f"{key}.outer_steps=6",
            f"{key}.save_every=2", f"{key}.seq_len=8", f"{key}.max_length=16",
            f"{key}.batch_size=32", "compute.torch_threads=1", "signals.precision=fp32",
            *extra]


@pytest.fixture(scope="module")
def learned_run(slice_dir: Path, tiny_model: Path, runs: Path, run_stages):
    cfg = load_config(None, overrides(slice_dir, tiny_model, "run.seeds=[0,1]",
                                      "evaluate.learners=[linear_probe,embeds_finetune]",
                                      "synthesize.learned_meta.attention_labels=true",
                                      "run.name=learned"))
    return cfg, *run_stages(cfg, runs)


def test_learned_method_runs_through_the_stages(learned_run) -> None:
    cfg, store, outcomes = learned_run
    assert [o.stage for o in outcomes] == ["ingest", "signals", "learn", "synthesize", "filter",
                                           "evaluate"]
    learn = store.manifest("learn")
    assert learn["family"] == "meta_matching"
    assert [r["seed"] for r in learn["replicates"]] == [0, 1]
    assert all(len(r["losses"]) == 6 and r["resumed_from"] is None
               for r in learn["replicates"])
    funnel = RunAudit(store.root).funnel()
    assert all(f["balanced"] for f in funnel), funnel
    assert any(f["stage"].startswith("learn ") and f.get("handoff") for f in funnel)
    assert store.manifest("learn")["counts"]["rows_out"] == 2 * 2 * 2  # seeds x classes x 2


def test_decoded_rows_have_parents_in_the_corpus_and_learned_soft_labels(learned_run) -> None:
    _, store, _ = learned_run
    corpus = store.read("ingest")
    train_ids = set(corpus.filter(pc.equal(corpus.column("split"), "train"))
                    .column("example_id").to_pylist())
    candidates = store.read("synthesize")
    assert candidates.num_rows == 8
    assert set(candidates.column("method").to_pylist()) == {"learned_meta"}
    for row in candidates.to_pylist():
        assert len(row["parent_ids"]) == 1 and row["parent_ids"][0] in train_ids
        assert row["text"].strip()
        assert abs(sum(row["soft_label"]) - 1) < 1e-5 and max(row["soft_label"]) < 1
    distilled = store.read("filter")
    lineage = RunAudit(store.root).lineage(distilled.column("example_id")[0].as_py())
    assert lineage["learned"] and lineage["sources"]
    assert {s["example_id"] for s in lineage["sources"]} <= train_ids


def test_matched_decoding_gives_real_training_rows_of_each_class(
        slice_dir: Path, tiny_model: Path, runs: Path, run_stages) -> None:
    cfg = load_config(None, overrides(slice_dir, tiny_model, "run.seeds=[0]",
                                      "run.name=learned-matched",
                                      "synthesize.learned_meta.decode=matched_sentence"))
    store, _ = run_stages(cfg, runs, "learn")
    learned = store.read("learn").to_pylist()
    corpus = store.read("ingest")
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    label_of = dict(zip(train.column("example_id").to_pylist(),
                        train.column("label_id").to_pylist(), strict=True))
    text_of = dict(zip(train.column("example_id").to_pylist(), train.column("text").to_pylist(),
                       strict=True))
    assert len(learned) == 4 and {r["decoding"] for r in learned} == {"matched_sentence"}
    for row in learned:
        assert label_of[row["nearest_id"]] == row["label_id"]  # a training row of its class
        assert row["text"] == text_of[row["nearest_id"]]
        assert row["parent_ids"][0] in label_of  # lineage: the prototype it started from
    assert len({r["decode_score"] for r in learned}) == 1  # the loss the whole set reaches


def test_tensors_artifact_verifies_and_reads_back_exactly(learned_run) -> None:
    _, store, _ = learned_run
    assert store.verify("learn") is None
    sets = read_learned(store)
    assert sorted(sets) == [0, 1]
    fingerprint = store.manifest("learn")["fingerprint"]
    for replicate, seed in enumerate([0, 1]):
        saved = torch.load(state_path(store.root, fingerprint, seed), weights_only=False)
        assert saved["step"] == 6
        assert torch.equal(sets[replicate].embeds.detach(), saved["synthetic"]["embeds"])
        assert torch.equal(sets[replicate].attention_logits.detach(),
                           saved["synthetic"]["attention_logits"])
        assert torch.equal(sets[replicate].log_lr.detach(), saved["synthetic"]["log_lr"])


def test_embeds_finetune_scores_only_the_learned_sets(learned_run) -> None:
    _, store, _ = learned_run
    scores = store.read("evaluate").to_pylist()
    ours = [s for s in scores if s["learner"] == "embeds_finetune"]
    assert [(s["setting"], s["replicate"]) for s in ours] == [("distilled", 0),
                                                              ("distilled", 1)]
    assert all(0 <= s["accuracy"] <= 1 and s["note"].startswith("1 step on the synthetic set")
               for s in ours)
    assert any(s["learner"] == "linear_probe" and s["setting"] == "random" for s in scores)


def test_report_has_the_learned_section_and_the_loss_plot(learned_run) -> None:
    _, store, _ = learned_run
    report = write_report(store.root).read_text()
    assert "## Learned distillation" in report
    assert "family: `meta_matching`" in report and "6 outer steps" in report
    html = (store.root / "report.html").read_text()
    assert "outer (matching) loss" in html and 'alt="outer loss"' in html


KILLED = textwrap.dedent("""
    import sys
    from distill_core.artifacts.store import RunStore
    from distill_core.config import load_config
    from distill_core.pipeline.order import run_pipeline
    from distill_core.pipeline.stage import StageContext
    from tasks.executors import make_executor

    cfg = load_config(None, sys.argv[2:])
    store = RunStore(sys.argv[1], cfg.run_id())
    run_pipeline(StageContext(cfg, store, make_executor(cfg.compute, cfg.faults)), "learn")
""")


def test_sigkill_mid_distillation_then_rerun_resumes_from_the_saved_step(
        slice_dir: Path, tiny_model: Path, runs: Path, tmp_path: Path, run_stages) -> None:
    base = overrides(slice_dir, tiny_model, "run.seeds=[3]", "evaluate.learners=[linear_probe]")
    reference_cfg = load_config(None, [*base, "run.name=reference"])
    reference, _ = run_stages(reference_cfg, runs, until="learn")
    killed = [*base, "run.name=killed", "faults.kill_after_outer_steps=5",
              f"faults.marker_dir={tmp_path / 'markers'}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", KILLED, str(runs), *killed], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == -9, result.stderr[-2000:]
    cfg = load_config(None, killed)
    store, outcomes = run_stages(cfg, runs, until="learn")
    fingerprint = store.manifest("learn")["fingerprint"]
    assert outcomes[-1].status == "computed"
    entry = store.manifest("learn")["replicates"][0]
    assert entry["resumed_from"] == 4 and len(entry["losses"]) == 6
    assert len(entry["step_s"]) == 2  # only steps 5 and 6 ran again
    assert fingerprint == reference.manifest("learn")["fingerprint"]
    ours, theirs = read_learned(store)[0], read_learned(reference)[0]
    assert torch.equal(ours.embeds.detach(), theirs.embeds.detach())
    assert torch.equal(ours.label_logits.detach(), theirs.label_logits.detach())
    assert entry["losses"] == reference.manifest("learn")["replicates"][0]["losses"]


def test_bad_learned_option_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "validate", "--set", "synthesize.method=learned_meta",
         "--set", "synthesize.learned_meta.decode=words"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=120)
    both = result.stdout + result.stderr
    lines = [line for line in both.splitlines() if line.strip()]
    assert result.returncode == 2 and "Traceback" not in both, both
    assert len(lines) == 1 and lines[0].startswith("error: "), both
    assert "synthesize.learned_meta.decode" in lines[0] and "nearest_sentence" in lines[0]


@pytest.mark.parametrize(("method", "family", "extra"), [
    ("learned_gradient", "gradient_matching", ()),
    ("learned_trajectory", "trajectory_matching",
     ("experts=1", "expert_checkpoints=3", "expert_interval=2", "expert_span=1")),
    ("learned_distribution", "distribution_matching", ()),
])
def test_each_other_family_runs_through_the_learn_stage(
        method: str, family: str, extra: tuple[str, ...], slice_dir: Path, tiny_model: Path,
        tmp_path: Path, run_stages) -> None:
    """The job's per-family dispatch: each family's outer loop runs, its rows reach the
    synthesize stage with lineage, and trajectory matching caches its experts."""
    key = f"synthesize.{method}"
    cfg = load_config(None, [
        f"data.data_dir={slice_dir}", f"synthesize.method={method}", "synthesize.per_class=2",
        f"{key}.model={tiny_model}", f"{key}.outer_steps=3", f"{key}.seq_len=8",
        f"{key}.max_length=16", f"{key}.batch_size=16", "compute.torch_threads=1",
        "signals.precision=fp32", "run.seeds=[0]", f"run.name={method}",
        *(f"{key}.{o}" for o in extra)])
    store, outcomes = run_stages(cfg, tmp_path / "runs", until="synthesize")
    assert [o.stage for o in outcomes] == ["ingest", "signals", "learn", "synthesize"]
    learn = store.manifest("learn")
    assert learn["family"] == family
    losses = learn["replicates"][0]["losses"]
    assert len(losses) == 3 and all(map(torch.isfinite, torch.tensor(losses)))
    learned = store.read("learn")
    assert learned.num_rows == 2 * 2  # classes x per_class
    corpus_ids = set(store.read("ingest").column("example_id").to_pylist())
    parents = [p for ps in learned.column("parent_ids").to_pylist() for p in ps]
    assert parents and set(parents) <= corpus_ids  # initialised from k-means prototypes
    experts = tmp_path / "runs" / ".cache" / "experts"
    assert (experts.is_dir() and any(experts.iterdir())) == (method == "learned_trajectory")
    assert all(f["balanced"] for f in RunAudit(store.root).funnel())
    # embeds_finetune's protocol: one inner step, or for trajectory matching its replay over
    # the 3 checkpoints of span 1 (inner_steps x ceil(3 / 1)), from the zero head.
    from distill_core.learners.embeds import LearnedSource

    protocol = LearnedSource.from_store(store).protocol
    assert protocol["steps"] == (3 if method == "learned_trajectory" else 1)
    assert protocol["head_init"] == "zero"


def test_a_static_signals_model_learns_in_its_base_encoder_and_embeds_decoded_rows_with_itself(
        slice_dir: Path, tiny_model: Path, tmp_path: Path, run_stages) -> None:
    """`signals.model: static:<encoder>` with no learned `model`: the tensors are learned in
    the transformer the static model is distilled from, and the decoded rows are embedded
    with the static model, as the corpus was (both failed to load 'static:...' before)."""
    import numpy as np

    from distill_core.pipeline.stages.signals import encoder_resources
    from distill_core.pipeline.static_model import signals_static_dir
    from distill_core.signals.static_encoder import StaticEncoder
    from tasks.executors import make_executor

    key = "synthesize.learned_meta"
    cfg = load_config(None, [f"data.data_dir={slice_dir}", "synthesize.method=learned_meta",
                             "synthesize.per_class=1", f"signals.model=static:{tiny_model}",
                             f"{key}.outer_steps=2", f"{key}.seq_len=8", f"{key}.max_length=16",
                             f"{key}.batch_size=16", "compute.torch_threads=1",
                             "run.seeds=[0]", "run.name=static-learned"])
    store, _ = run_stages(cfg, tmp_path, until="learn")
    assert store.manifest("learn")["model"] == str(tiny_model)
    rows = store.read("learn").to_pylist()
    (fitted,) = (tmp_path / ".cache" / "static-encoders").glob("fitted-*")
    stamp = (fitted / "model.safetensors").stat().st_mtime_ns
    folder = signals_static_dir(cfg, store, make_executor(cfg.compute),
                                encoder_resources(cfg.compute))
    assert folder == str(fitted)  # signals.static_fit is on by default; not fitted again
    assert (fitted / "model.safetensors").stat().st_mtime_ns == stamp
    encoder = StaticEncoder(folder)
    expected = encoder.encode([r["text"] for r in rows])
    np.testing.assert_allclose(np.asarray([r["embedding"] for r in rows], np.float32),
                               expected, atol=1e-6)
    assert expected.shape[1] == 32  # the static model's width, as the corpus's signals


def test_the_pools_features_are_read_out_once_for_every_seed(
        slice_dir: Path, tiny_model: Path, tmp_path: Path, run_stages, monkeypatch) -> None:
    """Meta-matching's pretrained features of the real rows do not depend on the seed: a run
    of two seeds reads the pool through the encoder once, and its seed 1 is the run of seed 1
    alone (read out afresh)."""
    from distill_core.learned import pooled_memo
    from distill_core.learned.functional import FunctionalLearner

    readouts: list[int] = []
    pooled = FunctionalLearner.pooled

    def counted(self, attention_mask, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if kwargs.get("input_ids") is not None:
            readouts.append(len(attention_mask))
        return pooled(self, attention_mask, **kwargs)

    monkeypatch.setattr(FunctionalLearner, "pooled", counted)

    def run(seeds: str, name: str):  # noqa: ANN202
        pooled_memo._KEPT.clear()
        cfg = load_config(None, overrides(slice_dir, tiny_model, f"run.seeds={seeds}",
                                          f"run.name={name}",
                                          "synthesize.learned_meta.decode=matched_sentence"))
        store, _ = run_stages(cfg, tmp_path / name, "learn")
        return read_learned(store)

    both = run("[0,1]", "two")
    pool_rows = max(readouts)
    assert readouts.count(pool_rows) == 1, readouts
    readouts.clear()
    alone = run("[1]", "alone")
    assert readouts.count(pool_rows) == 1, readouts
    assert torch.equal(both[1].embeds, alone[0].embeds)  # replicate 1 is seed 1
    assert torch.equal(both[1].soft_labels(), alone[0].soft_labels())
