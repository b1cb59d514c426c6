"""teacher: per-row logits, soft labels, losses and gradients from a model fit on the training
split (every training row up to `IN_MEMORY_POOL_ROWS`, a seeded sample above), read out on the
corpus batch by batch (`teacher_stream`); runs only when the method, the soft labels or a
filter needs it."""

from __future__ import annotations

from typing import Any

from distill_core.artifacts.counts import Counts
from distill_core.config import RunConfig
from distill_core.methods import get_method
from distill_core.models.finetune import LabelledTexts, finetune_classifier
from distill_core.pipeline.inputs import teacher_model_folder
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.pipeline.stages.signals import encoder_resources
from distill_core.pipeline.teacher_stream import (
    FitRows,
    fit_features,
    fit_rows,
    fit_texts,
    write_linear_readout,
    write_model_readout,
)
from distill_core.signals.models import model_identity
from distill_core.signals.readout import teacher_readout
from distill_core.signals.static_encoder import base_encoder
from distill_core.signals.teacher import fit_teacher, signals_from_logits, teacher_signals


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


def _finetuned(ctx: StageContext, fit: FitRows, n_classes: int):
    """The encoder fine-tuned with a fresh head on the fit rows, saved in the run folder
    (safetensors), then read out on every corpus row by the executor, a batch at a time."""
    cfg, t = ctx.cfg, ctx.cfg.teacher
    texts, pairs = fit_texts(ctx.store, fit)
    tuned = finetune_classifier(
        teacher_encoder(cfg), LabelledTexts(texts, pairs, fit.labels), n_classes,
        t.finetune_settings(cfg.signals.max_length),
        trust_remote_code=cfg.signals.trust_remote_code,
        progress=lambda done, total: ctx.report(done, total, "fine-tuning"))
    del texts, pairs
    model_dir = str(tuned.save(teacher_model_folder(ctx.store, ctx.fingerprint)))
    del tuned

    def read_out(batch_texts: list[str], batch_pairs: list[str] | None):
        return teacher_readout(ctx.executor, model_dir, batch_texts, batch_pairs,
                               cfg.signals.batch_size, ctx.resources)

    return write_model_readout(ctx.store, read_out, signals_from_logits, ctx.writer,
                               lambda done, total: ctx.report(done, total, "reading out"))


def _body(ctx: StageContext) -> StageOutput:
    cfg, store = ctx.cfg, ctx.store
    n_classes = len(store.manifest("ingest")["label_names"])
    fit = fit_rows(store)
    if cfg.teacher.kind == "finetune":
        rows, accuracy = _finetuned(ctx, fit, n_classes)
    else:
        model = fit_teacher(fit_features(store, fit), fit.labels, cfg.teacher.C,
                            cfg.teacher.max_iter)
        rows, accuracy = write_linear_readout(
            store, lambda x, labels: teacher_signals(model, x, labels, n_classes), ctx.writer)
    scores = accuracy.result()
    ctx.report(1, 1, f"eval accuracy {scores['eval'] or 0:.3f}")
    return StageOutput(None, Counts.one_to_one(rows),
                       extra={"accuracy": scores, "fit_rows": fit.record(), "streamed": True})


TEACHER = Stage(
    name="teacher", version=2,
    writes="per row: logits, soft_label, loss, el2n, grad_logits (= p - onehot(y))"
           "[, features: the fine-tuned teacher's head inputs]",
    reads=lambda cfg: ("ingest", "signals"), settings=_settings, body=_body,
    enabled=needs_teacher, cached=True, resources=encoder_resources, retries=2)
