"""teacher: per-row logits, soft labels, losses and gradients from a model fit on the training
split; runs only when the method, the soft labels or a filter needs it."""

from __future__ import annotations

from typing import Any

import numpy as np

from distill_core.artifacts.counts import Counts
from distill_core.config import RunConfig
from distill_core.methods import get_method
from distill_core.models.finetune import LabelledTexts, finetune_classifier
from distill_core.pipeline.inputs import teacher_model_folder
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.pipeline.stages.signals import encoder_resources
from distill_core.signals.embeddings import features, pair_texts, require_aligned
from distill_core.signals.models import model_identity
from distill_core.signals.readout import teacher_readout
from distill_core.signals.static_encoder import base_encoder
from distill_core.signals.teacher import (
    fit_teacher,
    signals_from_logits,
    teacher_signals,
    teacher_table,
)


def synthesis_reads_teacher(cfg: RunConfig) -> bool:
    """The method reads teacher signals, or the sets carry the teacher's soft labels."""
    return "teacher" in get_method(cfg.synthesize.method).needs or cfg.synthesize.soft_labels


def needs_teacher(cfg: RunConfig) -> bool:
    """Synthesis reads the teacher, or a filter asks for teacher agreement."""
    return synthesis_reads_teacher(cfg) or cfg.filter.teacher_consistency.enabled


def teacher_encoder(cfg: RunConfig) -> str:
    """The encoder a fine-tuned teacher starts from: `teacher.model`, else the signals encoder
    (the transformer a `static:` encoder was distilled from)."""
    return cfg.teacher.model or base_encoder(cfg.signals.model)


def _settings(cfg: RunConfig) -> dict[str, Any]:
    settings = cfg.teacher.model_dump(mode="json", exclude={"temperature"})
    if cfg.teacher.kind == "finetune":
        settings["model"] = model_identity(teacher_encoder(cfg))
        settings["max_length"] = cfg.signals.max_length
    return settings


def _finetuned_logits(ctx: StageContext, corpus, labels: np.ndarray, is_train: np.ndarray,
                      n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The encoder fine-tuned with a fresh head on the training split, saved in the run folder
    (safetensors), then read out on every row by the executor."""
    cfg, t = ctx.cfg, ctx.cfg.teacher
    texts, pairs = corpus.column("text").to_pylist(), pair_texts(corpus)
    train_rows = np.flatnonzero(is_train)
    data = LabelledTexts([texts[i] for i in train_rows],
                         None if pairs is None else [pairs[i] for i in train_rows],
                         labels[train_rows])
    tuned = finetune_classifier(
        teacher_encoder(cfg), data, n_classes,
        t.finetune_settings(cfg.signals.max_length),
        trust_remote_code=cfg.signals.trust_remote_code,
        progress=lambda done, total: ctx.report(done, total, "fine-tuning"))
    model_dir = tuned.save(teacher_model_folder(ctx.store, ctx.fingerprint))
    return teacher_readout(ctx.executor, str(model_dir), texts, pairs, cfg.signals.batch_size,
                           ctx.resources)


def _body(ctx: StageContext) -> StageOutput:
    cfg, store = ctx.cfg, ctx.store
    corpus, embeddings = store.read("ingest"), store.read("signals")
    require_aligned(corpus, embeddings)
    labels = corpus.column("label_id").to_numpy()
    is_train = np.asarray(corpus.column("split").to_pylist()) == "train"
    n_classes = len(store.manifest("ingest")["label_names"])
    head_inputs = None
    if cfg.teacher.kind == "finetune":
        logits, head_inputs = _finetuned_logits(ctx, corpus, labels, is_train, n_classes)
        signals = signals_from_logits(logits, labels)
    else:
        x = features(embeddings)
        model = fit_teacher(x[is_train], labels[is_train], cfg.teacher.C, cfg.teacher.max_iter)
        signals = teacher_signals(model, x, labels, n_classes)
    predicted = signals.logits.argmax(axis=1)
    accuracy = {split: float((predicted[mask] == labels[mask]).mean()) if mask.any() else None
                for split, mask in (("train", is_train), ("eval", ~is_train))}
    table = teacher_table(corpus.column("example_id"), corpus.column("split"), signals,
                          head_inputs)
    ctx.report(1, 1, f"eval accuracy {accuracy['eval'] or 0:.3f}")
    return StageOutput(table, Counts.one_to_one(corpus.num_rows), extra={"accuracy": accuracy})


TEACHER = Stage(
    name="teacher", version=1,
    writes="per row: logits, soft_label, loss, el2n, grad_logits (= p - onehot(y))"
           "[, features: the fine-tuned teacher's head inputs]",
    reads=lambda cfg: ("ingest", "signals"), settings=_settings, body=_body,
    enabled=needs_teacher, cached=True, resources=encoder_resources, retries=2)
