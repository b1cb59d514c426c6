"""Static token vectors fitted to the base encoder's sentence vectors on the corpus's own rows.

model2vec's distillation gives each vocabulary token the transformer's vector of that token
alone, reduced by PCA: a sentence is then the mean of context-free token vectors, whose
geometry keeps little of the transformer's on short sentences (herding on SST-2 selected
12 points worse on them; `benchmarks/RESULTS.md`, "Static encoder"). Here the table is fitted
so that the mean of a text's token vectors points where the transformer's sentence vector
does, on the first `rows` training texts of the corpus (their transformer vectors cost one
pass over those rows only):
1. a least-squares map from the distilled table's space to the transformer's, applied to every
   token (tokens the sample never shows keep this mapped vector);
2. Adam on the mean cosine distance between the pooled sentence vector (the same weighted,
   unknown-free mean `StaticEncoder` computes) and the transformer's, full batch, plus `l2`
   times each fitted token's squared distance from its mapped vector. Without that pull the
   table learns the sample by heart: on texts outside it the vectors end further from the
   transformer's than the mapped table's (SST-2: cosine 0.67 against 0.76); with it they
   end closer (0.87). `benchmarks/bench_static_fit.py` measures both.

The result is an ordinary model2vec folder (same tokenizer, weights and token mapping, the
transformer's width), so `StaticEncoder` reads it unchanged. The sample is the training split's
first rows in corpus order, so a corpus that grows at the end (a folder of daily files) keeps
its sample and its fitted table (the caches of its vectors stay valid). Like the tokenlearn
recipe (model2vec's authors), without its separate output layer: the fitted table lives in the
target space itself, so selection on it sees the transformer's geometry.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distill_core.artifacts.cache_use import mark_used
from distill_core.artifacts.sealed import seal, seal_problem
from distill_core.artifacts.stage_writer import drop_folder
from distill_core.errors import ConfigError
from distill_core.hashing import stable_hash
from distill_core.signals.static_encoder import StaticEncoder

FIT_RECIPE = "ridge-mapped-then-adam-cosine-l2-v1"  # part of a fitted model's identity
RIDGE = 1e-6  # the map's ridge, relative to the pooled vectors' mean squared norm


@dataclass(frozen=True)
class FitSettings:
    """How a table is fitted (`signals.static_fit`)."""

    rows: int
    steps: int
    lr: float
    l2: float

    def as_dict(self) -> dict[str, Any]:
        """Full batch and a least-squares start: nothing random, so no seed."""
        return {"rows": self.rows, "steps": self.steps, "lr": self.lr, "l2": self.l2,
                "recipe": FIT_RECIPE}


def texts_digest(texts: Sequence[str]) -> str:
    """sha256 of the sample's texts, in order (what the fitted table depends on)."""
    import hashlib

    digest = hashlib.sha256()
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


def pooling_matrix(encoder: StaticEncoder, texts: Sequence[str]):
    """(rows x table rows) sparse matrix M with M @ table = each text's pooled vector before
    normalising, exactly as `StaticEncoder.encode` pools (cut, tokenised, weighted, the
    unknown token left out)."""
    from scipy.sparse import diags

    encoder.tokenizer.enable_truncation(encoder.max_length)
    ids = encoder._token_ids([text[:encoder.max_chars] for text in texts])
    sums, counts = encoder.pooling_sums(ids)
    return diags(1.0 / np.maximum(counts, 1.0)).astype(np.float32) @ sums


def fit_table(encoder: StaticEncoder, texts: Sequence[str], targets: np.ndarray,
              settings: FitSettings, progress: Callable[[int, int], None] | None = None
              ) -> tuple[np.ndarray, dict[str, float]]:
    """The fitted table (table rows x the targets' width) and the fit's account (mean cosine
    to the targets before and after). Texts with no known token are left out."""
    import torch

    pooling = pooling_matrix(encoder, texts).tocsr()
    keep = np.asarray(pooling.sum(axis=1)).ravel() != 0
    if not keep.any():
        raise ConfigError("signals.static_fit: no text of the sample has a token the static "
                          "model knows; set signals.static_fit.rows: 0")
    pooling, targets = pooling[keep], np.asarray(targets, np.float32)[keep]
    targets = targets / np.maximum(np.linalg.norm(targets, axis=1, keepdims=True), 1e-12)
    pooled = np.asarray(pooling @ encoder.table, np.float64)
    # ridge-regularised least squares: well defined on a sample smaller than the width
    gram = pooled.T @ pooled
    gram[np.diag_indices_from(gram)] += RIDGE * max(np.trace(gram) / len(gram), 1e-12)
    mapping = np.linalg.solve(gram, pooled.T @ targets).astype(np.float32)
    mapped = (encoder.table @ mapping).astype(np.float32)
    # only the tokens the sample shows get a gradient: fit those rows, keep the others mapped
    used = np.unique(pooling.indices)
    local = pooling[:, used].tocoo()
    matrix = torch.sparse_coo_tensor(np.vstack([local.row, local.col]),
                                     local.data.astype(np.float32), local.shape,
                                     check_invariants=True).coalesce()
    goal = torch.from_numpy(targets)
    start = torch.from_numpy(mapped[used].copy())
    rows = torch.nn.Parameter(start.clone())
    optimiser = torch.optim.Adam([rows], lr=settings.lr)

    def distance() -> torch.Tensor:
        out = torch.sparse.mm(matrix, rows)
        return (1 - torch.nn.functional.cosine_similarity(out, goal, dim=1)).mean()

    with torch.no_grad():
        before = float(distance())
    for step in range(settings.steps):
        optimiser.zero_grad()
        loss = distance() + settings.l2 * ((rows - start) ** 2).sum(dim=1).mean()
        loss.backward()
        optimiser.step()
        if progress is not None:
            progress(step + 1, settings.steps)
    with torch.no_grad():
        after = float(distance())
    table = mapped.copy()
    table[used] = rows.detach().numpy()
    return table, {"cosine_mapped": round(1 - before, 6), "cosine_fitted": round(1 - after, 6),
                   "texts": int(keep.sum()), "tokens_fitted": int(len(used))}


def fitted_identity(static_identity: dict[str, Any], settings: FitSettings,
                    texts: Sequence[str]) -> dict[str, Any]:
    """What a fitted table depends on: the distilled model, the fit's settings, the sample."""
    return {"static": static_identity, "fit": settings.as_dict(),
            "sample_sha256": texts_digest(texts), "sample_texts": len(texts)}


def fitted_folder(identity: dict[str, Any], cache_root: str | Path) -> Path:
    """Where the table fitted under `identity` is kept in the runs folder's cache."""
    return Path(cache_root) / "static-encoders" / f"fitted-{stable_hash(identity)[:16]}"


def fitted_model_dir(static_dir: Callable[[], str | Path], identity: dict[str, Any],
                     cache_root: str | Path,
                     texts: Sequence[str], targets: Callable[[], np.ndarray],
                     settings: FitSettings, max_length: int,
                     threads: int | None = None) -> Path:
    """The cache folder of the table fitted on `texts` (`static_dir()`: the distilled model's
    folder, and `targets()`: the texts' transformer vectors, both asked for only when the
    folder must be built), pooled as the run embeds them (`max_length` tokens). Sealed like
    the distilled model (`artifacts/sealed.py`): a damaged or unsealed folder is built
    again."""
    import torch
    from model2vec import StaticModel

    folder = fitted_folder(identity, cache_root)
    key = folder.name.removeprefix("fitted-")
    if seal_problem(folder, identity) is None:
        mark_used(folder)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    drop_folder(folder)
    temporary = folder.parent / f".tmp-fitted-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    encoder = StaticEncoder(static_dir(), max_length)
    previous = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        table, account = fit_table(encoder, texts, targets(), settings)
        model = encoder.model
        StaticModel(vectors=table, tokenizer=model.tokenizer, config=model.config,
                    normalize=model.normalize, base_model_name=model.base_model_name,
                    language=model.language, weights=model.weights,
                    token_mapping=model.token_mapping, max_length=model.max_length
                    ).save_pretrained(
            str(temporary))
        (temporary / "textdistill.json").write_text(
            json.dumps({**identity, "account": account}, indent=2, sort_keys=True))
        seal(temporary, identity)
        os.replace(temporary, folder)
    except OSError:
        if seal_problem(folder, identity) is not None:
            raise
    finally:
        torch.set_num_threads(previous)
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def fit_account(folder: str | Path) -> dict[str, Any]:
    """What a fitted folder records about its fit (cosines before and after, sample size)."""
    record = json.loads((Path(folder) / "textdistill.json").read_text())
    return {"sample_sha256": record["sample_sha256"], "fit": record["fit"],
            **record.get("account", {})}
