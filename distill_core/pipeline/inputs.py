"""What stage bodies read from upstream artifacts: label names, the selection pool, the
teacher's view of the training rows, the filters' context, the teacher on new texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.filter.base import joined_texts
from distill_core.filter.stage import FilterContext
from distill_core.generate.features import generated_features
from distill_core.pipeline.executor import Executor, Resources
from distill_core.signals.embeddings import features, matrix, require_aligned, split_features
from distill_core.signals.teacher import class_logits, fit_teacher, softmax
from distill_core.synthesize.stage import TeacherView


def label_names(store: RunStore) -> list[str]:
    manifest = store.manifest("ingest")
    if manifest is None:
        raise RuntimeError("ingest has not run")
    return list(manifest["label_names"])


def selection_pool(cfg: RunConfig, store: RunStore) -> tuple[pa.Table, np.ndarray]:
    """The training rows a method draws on (after the corpus filters, when on), with features."""
    train, train_x = split_features(store.read("ingest"), store.read("signals"), "train")
    if cfg.filter.corpus:
        kept = set(store.read("clean", columns=["example_id"]).column("example_id").to_pylist())
        mask = np.fromiter((e in kept for e in train.column("example_id").to_pylist()),
                           dtype=bool, count=train.num_rows)
        train, train_x = train.filter(pa.array(mask)), train_x[mask]
    return train, train_x


def teacher_view(store: RunStore, train_ids: list[str], temperature: float) -> TeacherView:
    """Teacher signals of the training rows, in `train_ids` order."""
    table = store.read("teacher")
    table = table.filter(pc.equal(table.column("split"), "train"))
    position = {e: i for i, e in enumerate(table.column("example_id").to_pylist())}
    missing = [e for e in train_ids[:5] if e not in position]
    if missing:
        raise RuntimeError(f"no teacher signals for training rows {missing}")
    rows = np.fromiter((position[e] for e in train_ids), dtype=np.int64, count=len(train_ids))
    return TeacherView(grad_logits=matrix(table, "grad_logits")[rows],
                       el2n=table.column("el2n").to_numpy()[rows],
                       soft_labels=softmax(matrix(table, "logits")[rows].astype(np.float64),
                                           temperature).astype(np.float32),
                       features=(matrix(table, "features")[rows]
                                 if "features" in table.column_names else None))


def filter_context(store: RunStore, with_teacher: bool) -> FilterContext:
    """Normalised features, teacher p(own label) and the eval split, for the filters."""
    corpus, embeddings = store.read("ingest"), store.read("signals")
    require_aligned(corpus, embeddings)
    x = features(embeddings)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    label_prob = None
    if with_teacher:
        soft = matrix(store.read("teacher", columns=["soft_label"]), "soft_label")
        label_prob = soft[np.arange(len(soft)), corpus.column("label_id").to_numpy()]
    is_eval = np.asarray(corpus.column("split").to_pylist()) == "eval"
    eval_texts = joined_texts(corpus.filter(pa.array(is_eval)))
    eval_x = x[is_eval]
    ids = {e: i for i, e in enumerate(corpus.column("example_id").to_pylist()) if not is_eval[i]}
    generated = generated_features(store)
    if generated is not None:  # generated rows: features from the generate stage
        x = generated.extend(ids, x)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        if label_prob is not None:
            label_prob = np.concatenate([label_prob, generated.label_prob])
    return FilterContext(ids=ids, vectors=x, label_prob=label_prob, eval_texts=eval_texts,
                         eval_vectors=eval_x)


def teacher_model_folder(store: RunStore, fingerprint: str) -> Path:
    """Where a fine-tuned teacher lives: the runs folder's cache, by the teacher stage's
    fingerprint, so a run that restores the (cached) teacher stage finds its model too."""
    return store.local_cache_root("teacher.kind=finetune") / "teacher_model" / fingerprint[:16]


def teacher_model_dir(store: RunStore) -> str:
    """The fine-tuned teacher of this run's teacher stage."""
    return str(teacher_model_folder(store, (store.manifest("teacher") or {})["fingerprint"]))


def teacher_probabilities(cfg: RunConfig, store: RunStore, executor: Executor,
                          resources: Resources, texts: list[str], vectors: np.ndarray
                          ) -> np.ndarray:
    """The run's teacher read on new texts: the probe refitted on the training embeddings
    (deterministic), or the fine-tuned teacher loaded from the run folder."""
    if cfg.teacher.kind == "finetune":
        from distill_core.signals.readout import teacher_readout

        logits, _ = teacher_readout(executor, teacher_model_dir(store), texts, None,
                                    cfg.signals.batch_size, resources)
        return softmax(np.asarray(logits, np.float64))
    train, train_x = split_features(store.read("ingest"), store.read("signals"), "train")
    model = fit_teacher(train_x, train.column("label_id").to_numpy(), cfg.teacher.C,
                        cfg.teacher.max_iter)
    return softmax(class_logits(model, vectors, len(label_names(store))).astype(np.float64))
