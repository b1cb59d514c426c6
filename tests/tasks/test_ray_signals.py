"""The signals stage on the Ray executor: an actor pool gives the in-process embeddings, in
order; the fine-tuned teacher's read-out on the pool matches in process."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from distill_core.config import load_config
from distill_core.signals.embeddings import distinct_texts, matrix
from distill_core.signals.encoder import resolve_precision


def test_ray_signals_stage_matches_in_process(local_ray, slice_dir: Path, tmp_path: Path,
                                              encoder, run_stages) -> None:
    cfg = load_config(None, [f"data.data_dir={slice_dir}", "compute.backend=ray",
                             "compute.num_actors=2", "compute.cpus_per_actor=0.5",
                             "compute.torch_threads=1", "signals.batch_size=16"])
    store, outcomes = run_stages(cfg, tmp_path, until="signals")
    assert outcomes[-1].status == "computed"
    manifest = store.manifest("signals")
    assert manifest["backend"] == "ray"
    # each actor loaded the model once; how the blocks spread over the pool is Ray's choice
    assert len(manifest["workers"]) in (1, 2)
    # `precision: auto` (the default) is resolved by each worker: the settings say `auto`,
    # the manifest what each worker ran (bf16 on a CPU with bf16 units)
    ran = resolve_precision("auto", "cpu")
    assert manifest["stage_config"]["precision"] == "auto"
    assert manifest["backend_timings"]["precision"] == dict.fromkeys(manifest["workers"], ran)
    corpus = store.read("ingest")
    assert sum(manifest["workers"].values()) == len(distinct_texts(corpus))
    got = matrix(store.read("signals"))
    want = encoder.encode(corpus.column("text").to_pylist())  # fp32
    assert got.shape == want.shape
    # same vectors, same order (bf16 against the fp32 reference: within bf16's rounding)
    assert np.min(np.sum(got * want, axis=1)) > (0.999 if ran == "bf16" else 0.9999)


def test_a_ray_actor_killed_mid_batch_is_restarted_and_the_output_is_complete(
        local_ray, slice_dir: Path, tmp_path: Path, encoder, run_stages) -> None:
    markers = tmp_path / "markers"
    cfg = load_config(None, [f"data.data_dir={slice_dir}", "compute.backend=ray",
                             "compute.num_actors=1", "compute.cpus_per_actor=0.5",
                             "compute.torch_threads=1", "signals.batch_size=16",
                             "signals.precision=fp32", "faults.kill_actor_after_batches=1",
                             f"faults.marker_dir={markers}"])
    store, _ = run_stages(cfg, tmp_path / "runs", until="signals")
    assert (markers / "signals-killed").is_file()  # the fault did happen
    manifest = store.manifest("signals")
    assert len(manifest["workers"]) == 2  # the dead actor's work was redone by its successor
    corpus = store.read("ingest")
    assert sum(manifest["workers"].values()) == len(distinct_texts(corpus))  # none repeated
    got = matrix(store.read("signals"))
    want = encoder.encode(corpus.column("text").to_pylist())
    assert np.min(np.sum(got * want, axis=1)) > 0.9999


def test_fine_tuned_teacher_readout_on_ray_matches_in_process(local_ray, slice_dir: Path,
                                                              tmp_path: Path) -> None:

    from distill_core.ingest import ingest_dataset, resolve_dataset
    from distill_core.models.finetune import (
        FinetuneSettings,
        LabelledTexts,
        finetune_classifier,
        load_finetuned,
    )
    from distill_core.pipeline.executor import Resources
    from distill_core.signals.readout import teacher_readout
    from tasks.ray_executor import RayExecutor

    corpus = ingest_dataset(resolve_dataset("rte"), slice_dir).corpus  # a pair task
    texts, pairs = corpus.column("text").to_pylist(), corpus.column("text_pair").to_pylist()
    tuned = finetune_classifier(
        "all-MiniLM-L6-v2", LabelledTexts(texts, pairs, corpus.column("label_id").to_numpy()), 2,
        FinetuneSettings(steps=2, batch_size=8))
    folder = tuned.save(tmp_path / "teacher")
    want_logits, want_features = load_finetuned(folder).predict(texts, pairs)
    got_logits, got_features = teacher_readout(
        RayExecutor(torch_threads=1), str(folder), texts, pairs, 8, Resources(cpus=0.5))
    assert np.allclose(got_logits, want_logits, atol=1e-4)
    assert np.allclose(got_features, want_features, atol=1e-4)
    tuned_logits, _ = tuned.predict(texts, pairs)
    assert np.allclose(tuned_logits, want_logits, atol=1e-4)  # the saved copy is the model
