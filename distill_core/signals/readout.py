"""Encoder and teacher read-outs through an executor: texts in, arrays out, in input order.

The executor runs the actors where the config says (in process or on a Ray
actor pool); rows are grouped into blocks by length so each worker's batches
pad little. The result records rows per worker and timings for the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from distill_core.config import SignalsSection
from distill_core.pipeline.executor import ActorSpec, BatchResult, Executor, Resources
from distill_core.signals.actors import EmbedActor, TeacherActor

BLOCK_BATCHES = 8  # batches per block shipped to a pool worker


def _by_length(texts: Sequence[str]) -> np.ndarray:
    return np.argsort([len(t) for t in texts], kind="stable")


def embed_actor_kwargs(signals: SignalsSection, static_dir: str | None) -> dict[str, Any]:
    """`EmbedActor`'s constructor arguments for these settings."""
    return {"model": signals.model, "max_length": signals.max_length,
            "precision": signals.precision, "batch_size": signals.batch_size,
            "trust_remote_code": signals.trust_remote_code, "static_dir": static_dir}


def embed_texts(executor: Executor, signals: SignalsSection, texts: Sequence[str],
                resources: Resources, progress: Callable[[int, int], None] | None = None,
                static_dir: str | None = None) -> tuple[np.ndarray, BatchResult]:
    """Embeddings of `texts` [n, dim] float32, and the executor's account of the work.
    `static_dir`: the static model folder of a `static:<encoder>` setting (distilled or
    fitted: `pipeline/static_model.signals_static_dir`)."""
    actor = ActorSpec(EmbedActor, embed_actor_kwargs(signals, static_dir), "signals")
    result = executor.map_batches(actor, {"text": np.asarray(list(texts), dtype=object)},
                                  resources, signals.batch_size * BLOCK_BATCHES, progress,
                                  order=_by_length(texts))
    if "precision" in result.columns:  # what each worker ran (`auto` resolved there)
        result.timings["precision"] = dict(  # type: ignore[assignment]
            str(v).rsplit("=", 1) for v in np.unique(result.columns.pop("precision")))
    return np.asarray(result.columns["embedding"], np.float32), result


def teacher_readout(executor: Executor, model_dir: str, texts: Sequence[str],
                    pairs: Sequence[str] | None, batch_size: int, resources: Resources
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(logits, head inputs) of a saved fine-tuned teacher for `texts` (and `pairs`)."""
    columns = {"text": np.asarray(list(texts), dtype=object)}
    if pairs is not None:
        columns["pair"] = np.asarray(list(pairs), dtype=object)
    result = executor.map_batches(ActorSpec(TeacherActor, {"model_dir": model_dir,
                                                          "batch_size": batch_size}, "teacher"),
                                  columns, resources, batch_size * BLOCK_BATCHES,
                                  order=_by_length(texts))
    return (np.asarray(result.columns["logits"], np.float32),
            np.asarray(result.columns["features"], np.float32))
