"""`signals.model: static:<encoder>`: a model2vec model distilled once from the encoder's own
weights, kept in the runs folder's cache, and used by the signals stage like any encoder.

The base encoder here is a tiny BERT built from a config with MiniLM's tokenizer, so the
distillation (one forward pass per vocabulary token) takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill_core.config import load_config
from distill_core.signals.static_encoder import StaticEncoder, static_model_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One runs folder for the module, so the stage test reuses the model built here."""
    return tmp_path_factory.mktemp("runs")


def test_static_model_is_built_once_and_reused(tiny_encoder: Path, runs: Path) -> None:
    first = static_model_dir(f"static:{tiny_encoder}", runs / ".cache")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again = static_model_dir(f"static:{tiny_encoder}", runs / ".cache")
    assert again == first and (again / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".tmp-")]

    vectors = StaticEncoder(first).encode(["a fine film", "a dull , lifeless film",
                                           "a fine film"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])


def test_a_damaged_static_model_is_built_again(tiny_encoder: Path, tmp_path: Path) -> None:
    """The cached static model is sealed: a changed weight file is noticed, the folder moved
    aside and the model built again (the same bytes: the distillation is deterministic)."""
    folder = static_model_dir(f"static:{tiny_encoder}", tmp_path / ".cache")
    weights = folder / "model.safetensors"
    original = weights.read_bytes()
    damaged = bytearray(original)
    damaged[-1] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    again = static_model_dir(f"static:{tiny_encoder}", tmp_path / ".cache")
    assert again == folder and weights.read_bytes() == original
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_vectors_are_model2vecs_and_do_not_depend_on_threads(tiny_encoder: Path, runs: Path,
                                                             shared_datasets: Path) -> None:
    """The encoder's own tokenising threads and sparse float32 mean give model2vec's vectors
    (which average in float16): the same texts cut to max_length tokens, the unknown token
    left out, a text with no known token a zero row; and the same bits on any thread count."""
    from model2vec import StaticModel

    folder = static_model_dir(f"static:{tiny_encoder}", runs / ".cache")
    lines = (shared_datasets / "sst2_glue" / "train.tsv").read_text().splitlines()[1:400]
    texts = [line.split("\t")[0] for line in lines]
    texts += ["", "   ", "\u2603 \u2603", "a fine film " * 30 + "dull " * 300, "\u2603 fine"]
    one = StaticEncoder(folder, max_length=64, threads=1).encode(texts)
    three = StaticEncoder(folder, max_length=64, threads=3).encode(texts)
    assert np.array_equal(one, three)

    model = StaticModel.from_pretrained(str(folder))
    assert model.tokenizer.encode("\u2603", add_special_tokens=False).ids == [model.unk_token_id]
    reference = model.encode(texts, max_length=64, use_multiprocessing=False).astype(np.float32)
    norms = np.linalg.norm(reference, axis=1)
    assert np.array_equal(norms > 0, np.linalg.norm(one, axis=1) > 0)
    assert (norms == 0).sum() == 3  # the empty, blank and unknown-only texts
    known = norms > 0
    cosines = (one[known] * reference[known]).sum(axis=1) / norms[known]
    assert cosines.min() > 0.9999
    # The long text was cut (to "a fine film ..." only): uncut, "dull" would dominate it.
    uncut = StaticEncoder(folder, max_length=2048).encode(texts[-2:-1])[0]
    assert np.dot(one[-2], uncut) < 0.99


def test_signals_stage_embeds_with_the_static_encoder(tiny_encoder: Path, slice_dir: Path,
                                                      runs: Path, run_stages) -> None:
    cfg = load_config(None, [f"data.data_dir={slice_dir}", f"signals.model=static:{tiny_encoder}",
                             "run.name=static"])
    store, outcomes = run_stages(cfg, runs, until="signals")
    assert [o.status for o in outcomes] == ["computed", "computed"]
    embeddings = store.read("signals")
    assert embeddings.num_rows == store.read("ingest").num_rows
    matrix = np.asarray(embeddings.column("embedding").to_pylist(), np.float32)
    assert matrix.shape[1] == 32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-4)
    settings = store.manifest("signals")["stage_config"]
    assert settings["model"]["distillation"]["library"] == "model2vec"
    assert settings["model"]["base"]["sha256"]  # keyed by the base encoder's content
    assert "precision" not in settings  # the corpus's vectors come from no transformer pass
    # The distilled model and the table fitted to the base encoder on this corpus's first
    # training texts (signals.static_fit, on by default) sit in the runs folder's cache.
    models = sorted(p.parent.name for p in (runs / ".cache" / "static-encoders").glob(
        "*/model.safetensors"))
    assert len(models) == 2 and models[1].startswith("fitted-")
    assert settings["static_fit"]["rows"] == 20_000


def test_selection_centres_static_features_by_default(tiny_encoder: Path, slice_dir: Path,
                                                      runs: Path, run_stages) -> None:
    """`synthesize.center_features: auto` is on for a static encoder: herding (streamed from
    the spilled classes) picks what it picks on the pool's features less their mean,
    normalised again, not what it picks on the raw vectors; `false` gives the raw picks."""
    from distill_core.pipeline.stages.synthesize import SYNTHESIZE
    from distill_core.signals.embeddings import split_features
    from distill_core.synthesize.base import select_per_class
    from distill_core.synthesize.centering import centered

    base = [f"data.data_dir={slice_dir}", f"signals.model=static:{tiny_encoder}",
            "run.name=static", "synthesize.method=herding", "synthesize.per_class=3",
            "synthesize.oversample=1", "run.seeds=[0]", "signals.static_fit.rows=0"]
    fitted = load_config(None, [*base[:-1]])  # a fitted table selects raw, as a transformer
    assert fitted.semantic_dict()["synthesize"]["center_features"] == "auto"
    from distill_core.synthesize.centering import run_centres_features

    assert not run_centres_features(fitted)
    store, _ = run_stages(load_config(None, base), runs, until="synthesize")
    assert store.manifest("synthesize")["stage_config"]["center_features"] is True
    train, x = split_features(store.read("ingest"), store.read("signals"), "train")
    labels, ids = train.column("label_id").to_numpy(), train.column("example_id").to_pylist()

    def picks(features: np.ndarray) -> set[str]:
        return {ids[i] for i in select_per_class("herding", features, labels, 3, 0).indices}

    assert set(store.read("synthesize").column("example_id").to_pylist()) == picks(
        centered(x, x.mean(axis=0)))
    assert picks(centered(x, x.mean(axis=0))) != picks(x)
    raw, _ = run_stages(load_config(None, base + ["synthesize.center_features=false"]), runs,
                        until="synthesize")
    assert raw.manifest("synthesize")["stage_config"]["center_features"] is False
    assert set(raw.read("synthesize").column("example_id").to_pylist()) == picks(x)
    # A transformer's vectors stay as they are unless asked; `auto` never reads the setting.
    minilm = load_config(None, ["synthesize.method=herding"])
    assert SYNTHESIZE.settings(minilm)["center_features"] is False
    assert SYNTHESIZE.settings(load_config(None, ["synthesize.method=herding",
                                                  "synthesize.center_features=true"])
                               )["center_features"] is True
    assert SYNTHESIZE.settings(load_config(None, ["synthesize.method=auto"])
                               )["center_features"] is None
