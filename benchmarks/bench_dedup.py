"""Near-duplicate and semantic dedup over a whole corpus, with datasketch used directly as baseline.

On every SST-2 training row (read through the ordinary ingest path):

- `near_dedup` (textdistill's one-pass MinHash LSH filter, whole path: normalisation,
  shingles, signatures, band keys, verification against the rows kept before, reject rows)
  against datasketch used directly on the same shingles, parameters and rule
  (`MinHash(scheme="legacy")` + `update_batch` per text, `MinHashLSH.query`, then `insert`
  of a kept row), timed side by side in one run, both counting the same duplicates;
- `semantic_dedup` (SemDeDup) on the run's embeddings;
- exact dedup and contamination against the validation split, for the counts.

    python benchmarks/bench_dedup.py RUN_DIR

where RUN_DIR is a finished run on SST-2 (it holds the corpus and embeddings).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
from datasketch import MinHash, MinHashLSH

from distill_core.artifacts.store import RunStore
from distill_core.filter.base import FilterInput
from distill_core.filter.contamination import contamination_filter
from distill_core.filter.exact import exact_dedup
from distill_core.filter.near_dup import near_dedup
from distill_core.filter.near_seen import word_shingles
from distill_core.filter.semantic import semantic_dedup
from distill_core.ingest.normalize import normalize_text
from distill_core.signals.embeddings import features


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def datasketch_direct(texts: list[str], shingle: int, num_perm: int, threshold: float,
                      seed: int) -> int:
    """Rows that datasketch, used plainly, drops under the filter's rule: in input order, a
    row whose MinHash (legacy scheme) has an estimated Jaccard of at least `threshold` with
    a row kept before it (found by `MinHashLSH.query`) is dropped, any other is kept and
    inserted."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: dict[int, MinHash] = {}
    dropped = 0
    for index, text in enumerate(texts):
        signature = MinHash(num_perm=num_perm, seed=seed, scheme="legacy")
        signature.update_batch(word_shingles(normalize_text(text), shingle))
        if any(signature.jaccard(kept[other]) >= threshold for other in lsh.query(signature)):
            dropped += 1
            continue
        lsh.insert(index, signature)
        kept[index] = signature
    return dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--shingle", type=int, default=3)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--epsilon", type=float, default=0.95)
    parser.add_argument("--cluster-size", type=int, default=200)
    parser.add_argument("--out", default="bench-out/dedup.json")
    args = parser.parse_args()
    store = RunStore.open(args.run_dir)
    corpus, embeddings = store.read("ingest"), store.read("signals")
    is_train = np.asarray(corpus.column("split").to_pylist()) == "train"
    train = corpus.filter(pa.array(is_train))
    x = features(embeddings)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    evaluation = corpus.filter(pa.array(~is_train))
    data = FilterInput(table=train, groups=np.zeros(train.num_rows, dtype=np.int64),
                       vectors=x[is_train], eval_texts=evaluation.column("text").to_pylist(),
                       eval_vectors=x[~is_train])
    texts = data.texts()
    report: dict = {"rows": train.num_rows, "params": vars(args)}

    def timed(name: str, fn):
        before = rss_mb()
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        report[name] = {"seconds": round(seconds, 2),
                        "rows_per_s": round(train.num_rows / seconds, 1),
                        "rss_growth_mb": round(rss_mb() - before, 1)}
        print(f"{name:>22}: {seconds:7.2f} s  {train.num_rows / seconds:9.1f} rows/s", flush=True)
        return out

    baseline_a = timed("datasketch_direct", lambda: datasketch_direct(
        texts, args.shingle, args.num_perm, args.threshold, 1))
    ours = timed("near_dedup", lambda: near_dedup(data, args.shingle, args.num_perm,
                                                  args.threshold, 1))
    baseline_b = timed("datasketch_direct_again", lambda: datasketch_direct(
        texts, args.shingle, args.num_perm, args.threshold, 1))
    base_rate = np.mean([report["datasketch_direct"]["rows_per_s"],
                         report["datasketch_direct_again"]["rows_per_s"]])
    report["near_dedup_ratio_vs_datasketch"] = round(report["near_dedup"]["rows_per_s"]
                                                     / base_rate, 3)
    report["near_duplicates"] = {"textdistill": len(ours), "datasketch_direct": baseline_a}
    assert baseline_a == baseline_b
    semantic = timed("semantic_dedup", lambda: semantic_dedup(data, args.epsilon,
                                                              args.cluster_size, 0))
    exact = timed("exact_dedup", lambda: exact_dedup(data))
    contaminated = timed("contamination", lambda: contamination_filter(data, 13, 0.95))
    report["duplicates_found"] = {
        "exact": len(exact), "near (MinHash)": len(ours), "semantic (SemDeDup)": len(semantic),
        "contaminated": {r: sum(d.reason == r for d in contaminated)
                         for r in ("contaminated_ngram", "contaminated_embedding")}}
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
