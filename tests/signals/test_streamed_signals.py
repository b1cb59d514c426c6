"""The signals stage embeds the corpus batch by batch: the same vectors and texts hash as the
whole table, and a streamed selection from those parts picks what the in-memory one picks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from distill_core.config import load_config
from distill_core.hashing import stable_hash
from distill_core.pipeline.inputs import selection_pool
from distill_core.pipeline.stages import signals as signals_stage
from distill_core.signals.embeddings import StringsHasher, embed_corpus, matrix, texts_hash
from distill_core.synthesize import class_rows, streamed
from distill_core.synthesize.base import select_per_class


@pytest.fixture(scope="module")
def streamed_run(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory, run_stages):
    """SST-2's slice through signals in batches of 50 rows and a herding selection with every
    class streamed in chunks of 32 rows."""
    patch = pytest.MonkeyPatch()
    patch.setattr(signals_stage, "BATCH_ROWS", 50)
    patch.setattr(streamed, "STREAM_ABOVE_ROWS", 10)
    patch.setattr(class_rows, "CHUNK_ROWS", 32)
    cfg = load_config(None, [f"data.data_dir={slice_dir}", "signals.precision=fp32",
                             "synthesize.method=herding", "synthesize.per_class=4",
                             "run.seeds=[0,1]", "run.name=streamed"])
    try:
        store, _ = run_stages(cfg, tmp_path_factory.mktemp("runs"), until="synthesize")
    finally:
        patch.undo()
    return cfg, store


def test_batches_give_the_whole_tables_vectors_and_hash(streamed_run, encoder) -> None:
    cfg, store = streamed_run
    corpus, embeddings = store.read("ingest"), store.read("signals")
    manifest = store.manifest("signals")
    assert manifest["batch_rows"] == 50 and corpus.num_rows > 300
    assert manifest["row_cache"]["parts_written"] == -(-corpus.num_rows // 50)
    assert embeddings.column("example_id").equals(corpus.column("example_id"))
    whole = embed_corpus(corpus, lambda texts: encoder.encode(list(texts)))
    np.testing.assert_allclose(matrix(embeddings), matrix(whole), atol=2e-5)
    assert manifest["fingerprint"]
    # Its identity: the ingest parts' digests with the per-part cache (the default), else
    # the texts' hash, the same as the whole table's.
    parts = store.manifest("ingest")["parts"]
    assert signals_stage._texts(cfg, store) == {"ingest_parts": stable_hash(
        [parts[name]["sha256"] for name in sorted(parts) if name.startswith("data/")])}
    plain = cfg.model_copy(update={"signals": cfg.signals.model_copy(
        update={"row_cache": False})})
    assert signals_stage._texts(plain, store)["texts"] == texts_hash(corpus)


def test_streamed_herding_from_the_parts_matches_in_memory(streamed_run) -> None:
    cfg, store = streamed_run
    notes = store.manifest("synthesize")["selection"]
    assert notes["streamed"] and set(notes["per_class"].values()) == {
        "herding (one pass per pick)"}
    candidates = store.read("synthesize")
    train, x = selection_pool(cfg, store)
    want = select_per_class("herding", x, train.column("label_id").to_numpy(), 4, seed=0,
                            oversample=cfg.synthesize.oversample)
    expected = train.column("example_id").to_numpy(zero_copy_only=False)[want.indices]
    for replicate in (0, 1):  # herding ignores the seed: both replicates are the same
        rows = [r for r in candidates.to_pylist() if r["replicate"] == replicate]
        assert [r["example_id"] for r in rows] == expected.tolist()
        assert all(r["parent_ids"] == [r["example_id"]] for r in rows)
    assert not list(store.root.glob(".synthesize-spill*"))  # the spill folder is removed


def test_the_strings_hash_depends_on_the_values_not_on_the_chunks() -> None:
    """Same values cut differently: same digest; values that only differ in where one ends
    and the next begins, or a null against an empty string: another digest."""
    def digest(*chunks: list[str | None]) -> str:
        hasher = StringsHasher()
        for chunk in chunks:
            hasher.update(pa.chunked_array([pa.array(chunk, pa.string())]))
        return hasher.hexdigest()

    values = ["a film", None, "", "déjà vu", "x" * 1000]
    whole = digest(values)
    assert digest(values[:2], values[2:]) == whole
    assert digest(values[:1], [], values[1:4], values[4:]) == whole
    sliced = StringsHasher()
    sliced.update(pa.array(["pad", *values], pa.string()).slice(1))
    assert sliced.hexdigest() == whole
    assert digest(["ab", "c"]) != digest(["a", "bc"])
    assert digest([None]) != digest([""])
    assert digest(["a", "b"]) != digest(["b", "a"])
