"""signals: one L2-normalised, mean-pooled embedding per corpus text (two for pairs), from a
transformer encoder or the static model distilled from one (`static:<encoder>`).

With `signals.row_cache` (the default) each distinct text's vector is looked up in the runs
folder's per-text cache (`signals/row_cache.py`, keyed by these settings); only the texts it
lacks go through the encoder, and they are added to it. The manifest counts distinct texts
reused and computed (`rows_reused`, `rows_computed`).
"""

from __future__ import annotations

from typing import Any

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.store import RunStore
from distill_core.config import ComputeSection, RunConfig
from distill_core.pipeline.executor import Resources
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.signals.embeddings import distinct_texts, embed_corpus, texts_hash
from distill_core.signals.encoder import recorded_precision
from distill_core.signals.models import model_identity
from distill_core.signals.readout import embed_texts
from distill_core.signals.row_cache import RowCache, cached_encode
from distill_core.signals.static_encoder import is_static, static_identity, static_model_dir


def _settings(cfg: RunConfig) -> dict[str, Any]:
    if is_static(cfg.signals.model):  # token vectors: no precision, no transformer pass
        return {"model": static_identity(cfg.signals.model),
                "max_length": cfg.signals.max_length, "pooling": "mean", "normalize": "l2"}
    return {"model": model_identity(cfg.signals.model), "max_length": cfg.signals.max_length,
            "precision": recorded_precision(cfg.signals.precision, cfg.compute.backend),
            "pooling": "mean", "normalize": "l2"}


def _texts(cfg: RunConfig, store: RunStore) -> dict[str, str]:
    """Embeddings depend on the texts, not on how ingest found them: keyed by their hash."""
    return {"texts": texts_hash(store.read("ingest", columns=["text", "text_pair"]))}


def encoder_resources(compute: ComputeSection) -> Resources:
    return Resources(cpus=compute.cpus_per_actor, gpus=compute.gpus_per_actor,
                     workers=compute.num_actors)


def _body(ctx: StageContext) -> StageOutput:
    corpus = ctx.store.read("ingest")
    static_dir = (str(static_model_dir(ctx.cfg.signals.model,
                                       ctx.store.local_cache_root("a static: signals.model")))
                  if is_static(ctx.cfg.signals.model) else None)
    runs: dict[str, Any] = {}

    def encode(texts):
        vectors, runs["result"] = embed_texts(ctx.executor, ctx.cfg.signals, texts,
                                              ctx.resources,
                                              lambda done, total: ctx.report(done, total),
                                              static_dir)
        return vectors

    def encode_cached(texts):
        cache = RowCache(ctx.store.cache_root, _settings(ctx.cfg))
        vectors, runs["rows"] = cached_encode(cache, texts, encode, ctx.store.run_id)
        return vectors

    # The row cache renames files in place: a local runs folder only (not an object store).
    row_cache = ctx.cfg.signals.row_cache and not ctx.store.remote
    embeddings = embed_corpus(corpus, encode_cached if row_cache else encode)
    extra: dict[str, Any] = {"backend": ctx.executor.name}
    if "rows" in runs:
        stats = runs["rows"]
        extra.update(rows_reused=stats.rows_reused, rows_computed=stats.rows_computed,
                     row_cache=stats.to_dict())
    else:
        extra.update(rows_reused=0, rows_computed=len(distinct_texts(corpus)),
                     row_cache={"enabled": False})
    if "result" in runs:  # the encoder ran (not when every text came from the row cache)
        result = runs["result"]
        seconds = result.timings.get("total_s", 0.0)
        extra.update(workers=result.workers, backend_timings=result.timings,
                     texts_per_second=round(sum(result.workers.values()) / max(seconds, 1e-9),
                                            1))
    return StageOutput(embeddings, Counts.one_to_one(corpus.num_rows), extra=extra)


def _report(store: RunStore) -> list[str]:
    manifest = store.manifest("signals") or {}
    if "rows_computed" not in manifest:
        return []
    rows = manifest.get("row_cache", {})
    restored = " (stage restored whole from the cache: counts of the run that computed it)" \
        if manifest.get("cache", {}).get("hit") else ""
    if not rows.get("key"):
        return [f"- embeddings: {manifest['rows_computed']} distinct texts embedded, row cache "
                f"off{restored}"]
    lines = [f"- row cache: {manifest['rows_reused']} distinct texts reused, "
             f"{manifest['rows_computed']} embedded (`{rows.get('folder')}`, "
             f"{rows.get('parts_read', 0)} parts read){restored}"]
    lines += [f"- row cache: dropped a damaged part, its texts embedded again: {why}"
              for why in rows.get("dropped", [])]
    if rows.get("not_saved"):
        lines.append(f"- row cache: new vectors not saved ({rows['not_saved']})")
    return lines


SIGNALS = Stage(
    name="signals", version=2,
    writes="embeddings: example_id, split, embedding[, embedding_pair] (float32, L2-normalised)",
    reads=lambda cfg: ("ingest",), settings=_settings, body=_body, cached=True,
    resources=encoder_resources, identity=_texts, retries=2, report=_report)
