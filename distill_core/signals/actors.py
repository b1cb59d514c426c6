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


class CorpusEmbedActor:
    """The signals stage's worker when it reads ingest's parts itself (`map_parquet`): the
    embeddings of a block of corpus rows (`example_id`, `split`, `text`, `text_pair`).

    As in process, each distinct text of the block is embedded once; with `cache_root` the
    runs folder's row cache is consulted first and the texts it lacked are appended to it
    (its parts are safe to add from several workers at once). Returns `example_id` (passed
    through, so the caller can check the rows' order), `embedding` [, `embedding_pair`], and
    `_account`: the block's account as JSON in the first row, "" in the others (distinct
    texts embedded and reused, cache parts, precision, where)."""

    progress: Callable[[int, int], None] | None = None
    where: str = "local"

    def __init__(self, embed: dict, pairs: bool, cache_root: str | None,
                 settings: dict | None, run_id: str) -> None:
        from distill_core.signals.row_cache import RowCache

        self.embed = EmbedActor(**embed)
        self.pairs, self.run_id = pairs, run_id
        self.cache = RowCache(cache_root, settings) if cache_root is not None else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import json
        import time

        import pyarrow as pa

        from distill_core.signals.embeddings import embed_corpus, matrix
        from distill_core.signals.row_cache import cached_encode

        self.embed.where = self.where
        account: dict = {"where": self.where, "embedded": 0, "seconds": 0.0}

        def encode(texts):
            start = time.perf_counter()
            out = self.embed({"text": np.asarray(list(texts), dtype=object)})
            account["embedded"] += len(texts)
            account["seconds"] += time.perf_counter() - start
            if "precision" in out and len(out["precision"]):
                account["precision"] = str(out["precision"][0])
            return out["embedding"]

        def encode_cached(texts):
            vectors, stats = cached_encode(self.cache, texts, encode, self.run_id)
            account["rows"] = stats.to_dict()
            return vectors

        rows = pa.table({name: pa.array(batch[name].tolist())
                         for name in ("example_id", "split", "text", "text_pair")})
        table = embed_corpus(rows, encode if self.cache is None else encode_cached, self.pairs)
        notes = np.full(rows.num_rows, "", dtype=object)
        notes[0] = json.dumps(account)
        out = {"example_id": batch["example_id"], "embedding": matrix(table, "embedding"),
               "_account": notes}
        if "embedding_pair" in table.column_names:
            out["embedding_pair"] = matrix(table, "embedding_pair")
        return out
