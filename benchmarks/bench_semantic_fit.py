"""How many rows semantic dedup's k-means needs: the centroids fitted on seeded samples of a
large run's training vectors against the fit on all of them (and against another seed's fit
on all of them, the noise floor), the rows each drops compared, each step timed.

Semantic dedup fits its centroids on at most `semantic.FIT_ROWS` rows (a seeded sample above
it) so that the corpus clean stage holds at most that many vectors for the fit. This measures
what that sample changes in the rows dropped, on a finished run's training rows (every one,
as if no other filter ran), with the filter's defaults (cluster_size 200, epsilon 0.95).

    python benchmarks/bench_semantic_fit.py RUN_DIR --sizes 65536,262144,0 --seeds 0,1

(0: every row.) Prints a markdown table; one process, one fit at a time.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from distill_core.artifacts.store import RunStore  # noqa: E402
from distill_core.filter import semantic  # noqa: E402
from distill_core.pipeline.filter_context import normalised  # noqa: E402
from distill_core.pipeline.teacher_stream import fit_features, fit_rows  # noqa: E402


def timed_drops(vectors: np.ndarray, fit: int, seed: int, cluster_size: int, epsilon: float
                ) -> tuple[set[int], dict[str, float]]:
    """The rows dropped with the centroids fitted on `fit` rows (0: all), and each step's
    seconds: semantic_drops' steps, called one by one."""
    times = {}
    start = time.perf_counter()
    semantic.FIT_ROWS = fit or len(vectors)
    centroids = semantic.fit_centroids(vectors[semantic.fit_rows(len(vectors), seed)],
                                       semantic.cluster_count(len(vectors), cluster_size),
                                       seed)
    times["fit"] = time.perf_counter() - start
    start = time.perf_counter()
    labels = np.empty(len(vectors), np.int32)
    distance = np.empty(len(vectors), np.float32)
    for lo, hi in semantic.assign_chunks(len(vectors), len(centroids)):
        labels[lo:hi], distance[lo:hi] = semantic.assign(vectors[lo:hi], centroids)
    times["assign"] = time.perf_counter() - start
    start = time.perf_counter()
    rows = np.arange(len(vectors))
    order = semantic.cluster_order(rows, labels, distance)
    found = semantic.greedy_drops(vectors[order], rows[order], labels[order], epsilon)
    times["compare"] = time.perf_counter() - start
    times["largest cluster"] = float(np.bincount(labels).max())
    return set(found.dropped.tolist()), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="A run folder with ingest and signals.")
    parser.add_argument("--sizes", default="65536,262144,0")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--cluster-size", type=int, default=200)
    parser.add_argument("--epsilon", type=float, default=0.95)
    args = parser.parse_args()
    store = RunStore(args.run_dir.parent, args.run_dir.name)
    every = fit_rows(store, limit=10**12)
    vectors = normalised(fit_features(store, every)).astype(np.float32)
    print(f"{len(vectors):,} training rows, {vectors.shape[1]} dims", flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {}
    for size in sizes:
        for seed in seeds:
            results[size, seed] = timed_drops(vectors, size, seed, args.cluster_size,
                                              args.epsilon)
            print(f"fit rows {size or len(vectors):,}, seed {seed}: "
                  f"{len(results[size, seed][0]):,} dropped, {results[size, seed][1]}; maxrss "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB",
                  flush=True)
    reference = results.get((0, seeds[0]), (None,))[0]
    lines = ["| fit rows | seed | dropped | fit s | assign s | compare s | largest cluster | "
             "dropped rows shared with all rows, seed " f"{seeds[0]} (Jaccard) |",
             "|---|---|---|---|---|---|---|---|"]
    for (size, seed), (dropped, times) in results.items():
        both = len(dropped & reference) if reference is not None else 0
        shared = (f"{both:,} ({both / max(1, len(dropped | reference)):.3f})"
                  if reference is not None else "-")
        lines.append(f"| {size or len(vectors):,} | {seed} | {len(dropped):,} | "
                     f"{times['fit']:.1f} | {times['assign']:.1f} | {times['compare']:.1f} | "
                     f"{times['largest cluster']:,.0f} | {shared} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
