"""The signals stage on the Ray executor: the pool's workers read ingest's parts themselves
(Ray Data) and give the in-process embeddings, in order; the fine-tuned teacher's read-out on
the pool matches in process. (`precision: auto` resolved per worker, and the vectors against
the in-process encoder, are checked on a two-node cluster in tests/servers/test_ray_cluster.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from distill_core.artifacts import stage_writer
from distill_core.artifacts.store import RunStore
from distill_core.config import load_config
from distill_core.pipeline.stages import signals as signals_stage
from distill_core.signals.embeddings import distinct_texts, matrix
from distill_core.signals.row_cache import RowCache, text_hashes

MULTI_PART_ARGS = ["compute.num_actors=2", "compute.cpus_per_actor=0.5",
                   "compute.torch_threads=1", "signals.batch_size=16", "signals.precision=fp32"]


def _multi_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage_writer, "ROWS_PER_PART", 70)  # a multi-part ingest
    monkeypatch.setattr(signals_stage, "PART_BLOCK_ROWS", 50)  # blocks straddle the parts


@pytest.fixture(scope="module")
def multi_part_ray_run(local_ray, slice_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                       run_stages) -> tuple[Path, str, list[str]]:
    """Signals on Ray over a multi-part ingest, the driver forbidden to feed rows to the pool:
    (runs folder, run id, config overrides). Two tests read it; one copies it first."""
    from tasks.ray_executor import RayExecutor

    def fed(*args, **kwargs):
        raise AssertionError("the driver fed the corpus's rows to the pool")

    args = [f"data.data_dir={slice_dir}", *MULTI_PART_ARGS, "compute.backend=ray"]
    runs = tmp_path_factory.mktemp("ray") / "runs"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _multi_part(monkeypatch)
        monkeypatch.setattr(RayExecutor, "map_batches", fed)
        store, _ = run_stages(load_config(None, args), runs, until="signals")
    return runs, store.run_id, args


def test_ray_signals_read_the_ingest_parts_on_the_workers_and_match_the_local_backend(
        multi_part_ray_run, tmp_path: Path, run_stages,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _multi_part(monkeypatch)
    runs, run_id, args = multi_part_ray_run
    ray_store = RunStore(runs, run_id)
    local = [arg for arg in args if arg != "compute.backend=ray"]
    local_store, _ = run_stages(load_config(None, local), tmp_path / "local", until="signals")
    assert len(ray_store.parts("ingest")) > 2
    manifest = ray_store.manifest("signals")
    assert manifest["backend"] == "ray" and manifest["read_by"] == "workers"
    assert "read_by" not in local_store.manifest("signals")
    got, want = ray_store.read("signals"), local_store.read("signals")
    assert got.schema.equals(want.schema)
    assert got.column("example_id").equals(want.column("example_id"))
    assert got.column("split").equals(want.column("split"))
    assert np.allclose(matrix(got), matrix(want), atol=1e-5)  # batch padding: last bits only
    # the workers extended the row cache themselves: every text of the corpus is in it
    corpus = ray_store.read("ingest")
    texts = distinct_texts(corpus)
    cache = RowCache(ray_store.cache_root, signals_stage._settings(load_config(None, args)))
    hit = cache.lookup(text_hashes(texts))
    assert hit.found.all()
    assert manifest["rows_computed"] + manifest["rows_reused"] >= len(texts)
    assert manifest["row_cache"]["parts_written"] >= 2  # one per block with new texts


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
    # Every distinct text embedded once: the successor redoes what the dead actor had not
    # handed back, and a block the dead actor had finished (its output lost with it, when
    # Ray re-executes the block) comes back from the row cache that actor had extended.
    corpus = store.read("ingest")
    workers = manifest["workers"]
    assert 1 <= len(workers) <= 2
    assert sum(workers.values()) == manifest["rows_computed"]
    assert manifest["rows_computed"] + manifest["rows_reused"] == len(distinct_texts(corpus))
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


def test_ray_signals_copy_the_parts_the_per_part_cache_has(
        multi_part_ray_run, tmp_path: Path, run_stages,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks that straddle ingest parts are cut at their ends, each part is kept; a rerun
    that lost one entry copies the others and embeds that part alone (one pool run)."""
    from distill_core.signals.part_cache import FOLDER

    _multi_part(monkeypatch)
    shared, run_id, args = multi_part_ray_run
    runs = tmp_path / "runs"
    shutil.copytree(shared, runs)  # the reruns below change its cache
    first = RunStore(runs, run_id)
    ingest = first.parts("ingest")
    account = first.manifest("signals")["part_cache"]
    assert len(ingest) > 2 and account["parts_saved"] == len(ingest)
    assert len(first.parts("signals")) == len(ingest)
    entries = sorted((runs / ".cache" / FOLDER).glob("*.json"))
    middle = signals_stage.PartCache(runs / ".cache", signals_stage._settings(
        load_config(None, args)), False).key(signals_stage._ingest_shas(first)[1])
    (runs / ".cache" / FOLDER / f"{middle}.json").unlink()  # the second part's entry is gone
    again, outcomes = run_stages(load_config(None, args + ["run.name=again"]), runs,
                                 until="signals")
    assert outcomes[-1].status == "computed"
    account = again.manifest("signals")["part_cache"]
    assert (account["parts_reused"], account["parts_saved"]) == (len(entries) - 1, 1)
    assert again.read("signals").column("example_id").equals(
        first.read("signals").column("example_id"))
    assert np.allclose(matrix(again.read("signals")), matrix(first.read("signals")), atol=1e-6)
    third, outcomes = run_stages(load_config(None, args + ["run.name=third"]), runs,
                                 until="signals")
    assert outcomes[-1].status == "cached"  # every part copied: nothing went to the pool
    assert third.read("signals").equals(again.read("signals"))


def test_a_fitted_static_model_on_ray_gives_the_in_process_vectors(
        local_ray, slice_dir: Path, tiny_encoder: Path, tmp_path: Path, run_stages,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`static:<encoder>` with `signals.static_fit` on Ray: the fit's sample is embedded by
    the pool, the workers embed the parts with the fitted folder, and the vectors are the
    in-process run's (its fitted table is the same: same sample, same identity)."""
    _multi_part(monkeypatch)
    args = [f"data.data_dir={slice_dir}", *MULTI_PART_ARGS, f"signals.model=static:{tiny_encoder}",
            "signals.static_fit.rows=100", "signals.static_fit.steps=10"]
    ray_store, _ = run_stages(load_config(None, [*args, "compute.backend=ray"]),
                              tmp_path / "ray", until="signals")
    local_store, _ = run_stages(load_config(None, args), tmp_path / "local", until="signals")
    assert ray_store.manifest("signals")["read_by"] == "workers"
    fitted = {p.name for p in (tmp_path / "ray" / ".cache" / "static-encoders").glob("fitted-*")}
    assert len(fitted) == 1 and fitted == {
        p.name for p in (tmp_path / "local" / ".cache" / "static-encoders").glob("fitted-*")}
    assert np.allclose(matrix(ray_store.read("signals")), matrix(local_store.read("signals")),
                       atol=1e-4)
