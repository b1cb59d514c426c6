"""The model workers of the signals and teacher stages, as executor actors.

Each is built once per worker (the model loads once) and called on batches of
rows as column arrays; the executor decides where (this process, or a Ray Data
actor pool). In process, `progress` (set by the executor) reports rows done.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class EmbedActor:
    """Sentence embeddings of the `text` column (mean-pooled, L2-normalised): a transformer
    encoder, or the static model distilled from one (`static_dir`). A transformer's rows also
    carry `precision`, `<where>=<fp32|bf16>`: what this worker resolved `auto` to."""

    progress: Callable[[int, int], None] | None = None
    where: str = "local"

    def __init__(self, model: str, max_length: int, precision: str, batch_size: int,
                 trust_remote_code: bool, static_dir: str | None = None) -> None:
        self.batch_size = batch_size
        if static_dir is not None:  # `static:<encoder>`: the distilled model2vec model
            from distill_core.signals.static_encoder import StaticEncoder

            self.encoder = StaticEncoder(static_dir, max_length)
            return
        from distill_core.signals.encoder import SentenceEncoder

        self.encoder = SentenceEncoder(model, max_length, precision,
                                       trust_remote_code=trust_remote_code)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.encoder.encode([str(t) for t in batch["text"]], self.batch_size,
                                      self.progress)
        precision = getattr(self.encoder, "precision", None)  # a static model has none
        if precision is None:
            return {"embedding": vectors}
        return {"embedding": vectors,
                "precision": np.full(len(vectors), f"{self.where}={precision}")}


class TeacherActor:
    """A saved fine-tuned teacher's logits and head inputs for `text` (and `pair`)."""

    progress: Callable[[int, int], None] | None = None
    where: str = "local"

    def __init__(self, model_dir: str, batch_size: int) -> None:
        from distill_core.models.finetune import load_finetuned

        self.batch_size = batch_size
        self.classifier = load_finetuned(model_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = [str(p) for p in batch["pair"]] if "pair" in batch else None
        logits, features = self.classifier.predict([str(t) for t in batch["text"]], pairs,
                                                   self.batch_size)
        return {"logits": logits, "features": features}
