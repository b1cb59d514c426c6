"""`signals.static_fit`: the static table fitted so that a text's mean token vector follows the
base encoder's sentence vector, on the corpus's first training texts.

The base encoder is a tiny BERT built from a config with MiniLM's tokenizer (seconds to distil
and to fit); the texts are real SST-2 rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill_core.config import load_config
from distill_core.signals.static_encoder import StaticEncoder, static_model_dir
from distill_core.signals.static_fit import FitSettings, fit_table, pooling_matrix


@pytest.fixture(scope="module")
def texts(shared_datasets: Path) -> list[str]:
    lines = (shared_datasets / "sst2_glue" / "train.tsv").read_text().splitlines()[1:1201]
    return [line.split("\t")[0] for line in lines]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def test_the_fit_brings_the_samples_pooled_vectors_to_the_encoders(
        tiny_encoder: Path, texts: list[str], tmp_path: Path) -> None:
    """Fitted on 1,000 texts, their static vectors are closer (cosine) to the encoder's than
    the least-squares mapped table's are, and the distilled table's pooling is what
    `StaticEncoder` computes. (Off the sample a random tiny encoder's vectors say nothing:
    generalisation is measured with MiniLM in benchmarks/bench_static_fit.py.)"""
    from distill_core.signals.encoder import SentenceEncoder

    static = StaticEncoder(static_model_dir(f"static:{tiny_encoder}", tmp_path))
    targets = SentenceEncoder(str(tiny_encoder), 128, "fp32").encode(texts, 64)
    pooled = _unit(np.asarray(pooling_matrix(static, texts[:50]) @ static.table, np.float32))
    np.testing.assert_allclose(pooled, static.encode(texts[:50]), atol=1e-5)

    fit = texts[:1000]
    table, account = fit_table(static, fit, targets[:1000], FitSettings(1000, 60, 0.01, 0.0))
    assert table.shape == (len(static.table), 32)
    # cosine distance to the encoder's vectors: the fit at least halves the mapped table's
    assert 1 - account["cosine_fitted"] < (1 - account["cosine_mapped"]) / 2, account
    pooled = pooling_matrix(static, fit)
    cosine = (_unit(np.asarray(pooled @ table)) * targets[:1000]).sum(axis=1).mean()
    assert cosine == pytest.approx(account["cosine_fitted"], abs=1e-4)
    mapped_table, mapped = fit_table(static, fit, targets[:1000], FitSettings(1000, 1, 1e-12, 0.0))
    assert mapped["cosine_fitted"] == pytest.approx(account["cosine_mapped"], abs=1e-5)
    untouched = np.setdiff1d(np.arange(len(table)), np.unique(pooled.indices))
    np.testing.assert_allclose(table[untouched], mapped_table[untouched], atol=1e-5)


def test_the_signals_stage_embeds_with_a_table_fitted_on_the_first_training_texts(
        tiny_encoder: Path, slice_dir: Path, tmp_path: Path, run_stages) -> None:
    """The fitted folder is an ordinary model2vec model the stage's vectors come from; it is
    built once; the caches are keyed by its sample, so another sample size gives other
    vectors for the same texts instead of the cached ones."""
    from distill_core.pipeline.stages.signals import encoder_resources
    from distill_core.pipeline.static_model import sample_texts, signals_static_dir
    from distill_core.signals.static_fit import fit_account
    from tasks.executors import make_executor

    base = [f"data.data_dir={slice_dir}", f"signals.model=static:{tiny_encoder}",
            "run.name=fit", "signals.static_fit.steps=20"]
    cfg = load_config(None, [*base, "signals.static_fit.rows=120"])
    store, _ = run_stages(cfg, tmp_path, until="signals")
    folder = Path(signals_static_dir(cfg, store, make_executor(cfg.compute),
                                     encoder_resources(cfg.compute)))
    assert folder.name.startswith("fitted-")
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    account = fit_account(folder)
    assert account["fit"]["rows"] == 120 and account["texts"] == 120
    assert account["cosine_fitted"] > account["cosine_mapped"]
    corpus = store.read("ingest")
    first = [t for t, s in zip(corpus.column("text").to_pylist(),
                               corpus.column("split").to_pylist(), strict=True) if s == "train"]
    assert sample_texts(store, 120) == first[:120]

    rows = store.read("signals")
    vectors = np.asarray(rows.column("embedding").to_pylist(), np.float32)
    np.testing.assert_allclose(vectors, StaticEncoder(folder).encode(
        corpus.column("text").to_pylist()), atol=1e-6)

    again, outcomes = run_stages(cfg, tmp_path, until="signals")
    assert [o.status for o in outcomes] == ["resumed", "resumed"]
    other_cfg = load_config(None, [*base, "signals.static_fit.rows=60", "run.name=fit60"])
    other, _ = run_stages(other_cfg, tmp_path, until="signals")
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    assert other.manifest("signals")["rows_reused"] == 0  # the row cache holds other vectors
    assert not np.allclose(np.asarray(other.read("signals").column("embedding").to_pylist(),
                                      np.float32), vectors, atol=1e-3)


def test_a_damaged_fitted_table_is_fitted_again_and_a_kept_one_needs_no_distilled_table(
        tiny_encoder: Path, slice_dir: Path, tmp_path: Path, run_stages) -> None:
    """The fitted folder is sealed: a flipped byte is noticed and the table fitted again (the
    same bytes: nothing random). While it is intact, `cache prune` removing the distilled
    table costs nothing: the fitted one is used without distilling again."""
    import shutil

    from distill_core.pipeline.stages.signals import encoder_resources
    from distill_core.pipeline.static_model import signals_static_dir
    from tasks.executors import make_executor

    cfg = load_config(None, [f"data.data_dir={slice_dir}", f"signals.model=static:{tiny_encoder}",
                             "run.name=fit", "signals.static_fit.steps=5",
                             "signals.static_fit.rows=80"])
    store, _ = run_stages(cfg, tmp_path, until="signals")

    def folder() -> Path:
        return Path(signals_static_dir(cfg, store, make_executor(cfg.compute),
                                       encoder_resources(cfg.compute)))

    fitted = folder()
    weights = fitted / "model.safetensors"
    original = weights.read_bytes()
    damaged = bytearray(original)
    damaged[-1] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    assert folder() == fitted and weights.read_bytes() == original
    (distilled,) = [p for p in fitted.parent.iterdir() if not p.name.startswith("fitted-")]
    shutil.rmtree(distilled)
    assert folder() == fitted and not distilled.exists()
