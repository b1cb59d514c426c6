"""signals: one L2-normalised, mean-pooled embedding per corpus text (two for pairs), from a
transformer encoder or the static model distilled from one (`static:<encoder>`)."""

from __future__ import annotations

from typing import Any

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.store import RunStore
from distill_core.config import ComputeSection, RunConfig
from distill_core.pipeline.executor import Resources
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.signals.embeddings import embed_corpus, texts_hash
from distill_core.signals.models import model_identity
from distill_core.signals.readout import embed_texts
from distill_core.signals.static_encoder import is_static, static_identity, static_model_dir


def _settings(cfg: RunConfig) -> dict[str, Any]:
    if is_static(cfg.signals.model):  # token vectors: no precision, no transformer pass
        return {"model": static_identity(cfg.signals.model),
                "max_length": cfg.signals.max_length, "pooling": "mean", "normalize": "l2"}
    return {"model": model_identity(cfg.signals.model), "max_length": cfg.signals.max_length,
            "precision": cfg.signals.precision, "pooling": "mean", "normalize": "l2"}


def _texts(cfg: RunConfig, store: RunStore) -> dict[str, str]:
    """Embeddings depend on the texts, not on how ingest found them: keyed by their hash."""
    return {"texts": texts_hash(store.read("ingest", columns=["text", "text_pair"]))}


def encoder_resources(compute: ComputeSection) -> Resources:
    return Resources(cpus=compute.cpus_per_actor, gpus=compute.gpus_per_actor,
                     workers=compute.num_actors)


def _body(ctx: StageContext) -> StageOutput:
    corpus = ctx.store.read("ingest")
    static_dir = (str(static_model_dir(ctx.cfg.signals.model, ctx.store.cache_root))
                  if is_static(ctx.cfg.signals.model) else None)
    runs: dict[str, Any] = {}

    def encode(texts):
        vectors, runs["result"] = embed_texts(ctx.executor, ctx.cfg.signals, texts,
                                              ctx.resources,
                                              lambda done, total: ctx.report(done, total),
                                              static_dir)
        return vectors

    embeddings = embed_corpus(corpus, encode)
    result = runs["result"]
    seconds = result.timings.get("total_s", 0.0)
    return StageOutput(embeddings, Counts.one_to_one(corpus.num_rows), extra={
        "backend": ctx.executor.name, "workers": result.workers,
        "backend_timings": result.timings,
        "texts_per_second": round(sum(result.workers.values()) / max(seconds, 1e-9), 1)})


SIGNALS = Stage(
    name="signals", version=1,
    writes="embeddings: example_id, split, embedding[, embedding_pair] (float32, L2-normalised)",
    reads=lambda cfg: ("ingest",), settings=_settings, body=_body, cached=True,
    resources=encoder_resources, identity=_texts, retries=2)
