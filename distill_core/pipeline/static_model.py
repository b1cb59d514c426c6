"""The static model a run's signals embed with: model2vec's distilled table, or that table
fitted to the base encoder on the corpus's first training texts (`signals.static_fit`).

Every stage that embeds texts with the signals encoder (the signals stage, and the stages
that embed new rows: generated, decoded) asks here, so they all use the same folder. The
fitted table depends on data (the sample's texts), so the signals stage's per-text and
per-part caches are keyed by the fit's identity as well (`cache_key`): two corpora with
other samples never share a vector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from distill_core.config import RunConfig
from distill_core.hashing import stable_hash
from distill_core.pipeline.batches import stage_batches
from distill_core.signals.encoder import recorded_precision
from distill_core.signals.static_encoder import (
    base_encoder,
    is_static,
    static_dir_for,
    static_identity,
)
from distill_core.signals.static_fit import FitSettings, fitted_identity, fitted_model_dir

if TYPE_CHECKING:
    from distill_core.artifacts.store import RunStore
    from distill_core.pipeline.executor import Executor, Resources


def fit_settings(cfg: RunConfig) -> FitSettings | None:
    """The fit a config asks for; None for a transformer or `static_fit.rows: 0`."""
    fit = cfg.signals.static_fit
    if not is_static(cfg.signals.model) or fit.rows == 0:
        return None
    return FitSettings(rows=fit.rows, steps=fit.steps, lr=fit.lr, l2=fit.l2)


def sample_texts(store: RunStore, rows: int) -> list[str]:
    """The first `rows` training texts in corpus order (a pair's two texts both count)."""
    texts: list[str] = []
    for batch in stage_batches(store, "ingest", ["split", "text", "text_pair"]):
        for split, text, pair in zip(batch.column("split").to_pylist(),
                                     batch.column("text").to_pylist(),
                                     batch.column("text_pair").to_pylist(), strict=True):
            if split != "train":
                continue
            texts += [t for t in (text, pair) if t is not None]
            if len(texts) >= rows:
                return texts[:rows]
    return texts


def _identity(cfg: RunConfig, settings: FitSettings, texts: list[str]) -> dict[str, Any]:
    target = {"encoder": base_encoder(cfg.signals.model),
              "precision": recorded_precision(cfg.signals.precision, cfg.compute.backend),
              "max_length": cfg.signals.max_length}
    return {**fitted_identity(static_identity(cfg.signals.model), settings, texts),
            "target": target}


def cache_key(cfg: RunConfig, store: RunStore) -> dict[str, Any]:
    """What the signals caches are keyed by beyond the config's settings: the fitted table's
    identity (empty for a transformer or an unfitted static model)."""
    settings = fit_settings(cfg)
    if settings is None:
        return {}
    return {"static_fit": stable_hash(_identity(cfg, settings, sample_texts(store,
                                                                           settings.rows)))}


def signals_static_dir(cfg: RunConfig, store: RunStore, executor: Executor,
                       resources: Resources) -> str | None:
    """The static model folder the run's texts are embedded with (None: a transformer). A
    fitted table is built once per sample and kept in the runs folder's cache; building it
    embeds the sample with the base encoder through `executor`, and needs the distilled
    table (distilled again if `cache prune` removed it; a kept fitted table does not)."""
    settings = fit_settings(cfg)
    if settings is None:
        return static_dir_for(cfg.signals.model, store)
    from distill_core.signals.readout import embed_texts

    texts = sample_texts(store, settings.rows)
    base = cfg.signals.model_copy(update={"model": base_encoder(cfg.signals.model)})

    def targets() -> np.ndarray:
        return embed_texts(executor, base, texts, resources)[0]

    cache_root = store.local_cache_root("a static: signals.model")
    return str(fitted_model_dir(lambda: static_dir_for(cfg.signals.model, store),  # type: ignore[arg-type, return-value]
                                _identity(cfg, settings, texts), cache_root, texts, targets,
                                settings, cfg.signals.max_length, cfg.compute.torch_threads))
