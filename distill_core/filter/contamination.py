"""Contamination: rows that copy or paraphrase evaluation data, against every eval split.

A row is contaminated when it shares a word n-gram (13 by default, GPT-3's
rule) of normalised text with any evaluation text, or, when it is shorter
than n words, equals one; or when its embedding is within cosine
`embedding_threshold` of an evaluation text's embedding (near paraphrases).
Dropping them keeps the scores honest: a distilled set that contains the test
sentences inflates every number.

Reasons: `contaminated_ngram`, `contaminated_embedding`.
"""

from __future__ import annotations

import numpy as np

from distill_core.filter.base import Drop, FilterInput
from distill_core.ingest.normalize import normalize_text

CHUNK = 4096


def ngrams(text: str, n: int) -> set[str]:
    words = text.split()
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def contamination_filter(data: FilterInput, ngram: int, embedding_threshold: float | None
                         ) -> list[Drop]:
    if data.eval_texts is None:
        raise ValueError("contamination needs the evaluation texts")
    eval_norm = [normalize_text(t) for t in data.eval_texts]
    eval_ngrams: dict[str, int] = {}
    for index, text in enumerate(eval_norm):
        for gram in ngrams(text, ngram):
            eval_ngrams.setdefault(gram, index)
    eval_whole = {text: i for i, text in reversed(list(enumerate(eval_norm)))}
    drops: dict[int, Drop] = {}
    for row, text in enumerate(data.normalized_texts()):
        if len(text.split()) < ngram:
            if text in eval_whole:
                drops[row] = Drop(row, "contaminated_ngram",
                                  f"equals evaluation text #{eval_whole[text]}")
            continue
        hit = next((g for g in ngrams(text, ngram) if g in eval_ngrams), None)
        if hit is not None:
            drops[row] = Drop(row, "contaminated_ngram",
                              f"shares the {ngram}-gram {hit!r} with evaluation text "
                              f"#{eval_ngrams[hit]}")
    if embedding_threshold is not None and data.vectors is not None \
            and data.eval_vectors is not None and len(data.eval_vectors):
        eval_vectors = data.eval_vectors.astype(np.float32)
        for start in range(0, len(data), CHUNK):
            block = data.vectors[start:start + CHUNK].astype(np.float32) @ eval_vectors.T
            best = block.argmax(axis=1)
            score = block[np.arange(len(block)), best]
            for offset in np.flatnonzero(score >= embedding_threshold):
                row = start + int(offset)
                drops.setdefault(row, Drop(row, "contaminated_embedding",
                                           f"cosine {score[offset]:.3f} with evaluation text "
                                           f"#{int(best[offset])}"))
    return sorted(drops.values(), key=lambda d: d.row)
