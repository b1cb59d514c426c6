"""The fine-tuned teacher: the encoder with a fresh head learns, and its signals feed selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from distill_core.config import load_config
from distill_core.models.finetune import FinetuneSettings, LabelledTexts, finetune_classifier
from distill_core.signals.embeddings import matrix


def test_finetuning_beats_the_untrained_head_on_real_text(slice_dir: Path, encoder) -> None:
    from distill_core.ingest import ingest_dataset, resolve_dataset

    corpus = ingest_dataset(resolve_dataset("sst2"), slice_dir).corpus
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    evaluation = corpus.filter(pc.equal(corpus.column("split"), "eval"))
    texts, labels = train.column("text").to_pylist(), train.column("label_id").to_numpy()
    data = LabelledTexts(texts, None, labels)
    untrained = finetune_classifier("all-MiniLM-L6-v2", data, 2,
                                    FinetuneSettings(steps=1, lr=1e-12, batch_size=4))
    tuned = finetune_classifier("all-MiniLM-L6-v2", data, 2,
                                FinetuneSettings(steps=20, batch_size=16, lr=1e-4))
    eval_texts = evaluation.column("text").to_pylist()
    eval_labels = evaluation.column("label_id").to_numpy()

    def accuracy(model) -> float:
        logits, pooled = model.predict(eval_texts)
        assert pooled.shape == (len(eval_texts), 384)
        return float((logits.argmax(1) == eval_labels).mean())

    tuned_accuracy, untrained_accuracy = accuracy(tuned), accuracy(untrained)
    assert tuned_accuracy >= 0.7 and tuned_accuracy > untrained_accuracy
    assert np.mean(tuned.losses[-5:]) < np.mean(tuned.losses[:5])


def test_finetune_teacher_stage_feeds_gradmatch(slice_dir: Path, tmp_path: Path, run_stages,
                                                monkeypatch) -> None:
    from distill_core.pipeline import teacher_stream
    from distill_core.signals.embeddings import pair_texts
    from distill_core.signals.readout import teacher_readout
    from tasks.executors import make_executor

    monkeypatch.setattr(teacher_stream, "READOUT_ROWS", 100)  # read out in several calls
    cfg = load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0]",
                             "synthesize.per_class=3", "synthesize.method=gradmatch",
                             "synthesize.gradmatch.at=teacher", "teacher.kind=finetune",
                             "teacher.steps=4", "teacher.batch_size=8"])
    store, _ = run_stages(cfg, tmp_path, until="teacher")
    teacher = store.read("teacher")
    assert matrix(teacher, "features").shape == (teacher.num_rows, 384)
    assert np.allclose(matrix(teacher, "soft_label").sum(axis=1), 1.0, atol=1e-5)
    assert store.manifest("teacher")["stage_config"]["kind"] == "finetune"
    # Read out 100 rows a call, row for row what one call over the whole corpus gives.
    corpus = store.read("ingest")
    assert corpus.num_rows > 2 * 100
    assert teacher.column("example_id").equals(corpus.column("example_id"))
    from distill_core.pipeline.inputs import teacher_model_dir
    from distill_core.pipeline.stages.signals import encoder_resources

    logits, heads = teacher_readout(make_executor(cfg.compute, cfg.faults),
                                    teacher_model_dir(store), corpus.column("text").to_pylist(),
                                    pair_texts(corpus), cfg.signals.batch_size,
                                    encoder_resources(cfg.compute))
    assert np.allclose(matrix(teacher, "logits"), logits, atol=1e-4)
    assert np.allclose(matrix(teacher, "features"), heads, atol=1e-4)
    run_stages(cfg, tmp_path, until="synthesize")
    picked = store.read("synthesize")
    assert picked.num_rows == 6 * cfg.synthesize.oversample  # ranked past the budget
    assert set(picked.column("method").to_pylist()) == {"gradmatch"}
    # The fine-tuned teacher is saved sealed; a damaged one is one clear error, not garbage.
    import pytest

    from distill_core.artifacts.sealed import seal_problem
    from distill_core.errors import ArtifactError
    from distill_core.models.finetune import load_finetuned

    folder = Path(teacher_model_dir(store))
    assert seal_problem(folder) is None and load_finetuned(folder, "cpu") is not None
    head = folder / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-1] ^= 0xFF
    head.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="head.safetensors changed since it was written"):
        load_finetuned(folder, "cpu")
