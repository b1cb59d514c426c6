"""Semantic dedup in two levels against plain SemDeDup on a large run's training vectors:
the rows each drops, compared with plain SemDeDup's (and with plain SemDeDup under another
seed, the noise floor), each step timed.

Semantic dedup clusters in two levels (coarse clusters of about `semantic.COARSE_ROWS` rows,
their centroids fitted on at most `semantic.FIT_ROWS` rows; then one k-means cluster per
`cluster_size` rows inside each) so that its work per row stays the same as the corpus
grows; with `--coarse 0` it is plain SemDeDup (one coarse cluster: k-means with one cluster
per `cluster_size` rows over every row). This measures what the two levels change in the
rows dropped, on a finished run's training rows (every one, as if no other filter ran),
with the filter's defaults (cluster_size 200, epsilon 0.95).

    python benchmarks/bench_semantic_fit.py RUN_DIR --coarse 32768,0 --seeds 0,1

Prints a markdown table; one process, one configuration at a time.
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

FIT_ROWS = semantic.FIT_ROWS
from distill_core.pipeline.filter_context import normalised  # noqa: E402
from distill_core.pipeline.teacher_stream import fit_features, fit_rows  # noqa: E402


def timed_drops(vectors: np.ndarray, coarse_rows: int, seed: int, cluster_size: int,
                epsilon: float) -> tuple[set[int], dict[str, float]]:
    """The rows dropped with coarse clusters of `coarse_rows` rows (0: one, fitted on every
    row), and each step's seconds: semantic_drops' steps, called one by one."""
    times = {}
    n = len(vectors)
    semantic.COARSE_ROWS = coarse_rows or n
    semantic.FIT_ROWS = FIT_ROWS if coarse_rows else n
    start = time.perf_counter()
    coarse = semantic.coarse_centroids(vectors[semantic.fit_rows(n, seed)], n, seed)
    labels, _ = semantic.nearest(vectors, coarse)
    members = semantic.coarse_members(labels, len(coarse))
    times["coarse"] = time.perf_counter() - start
    start = time.perf_counter()
    found = semantic.SemanticDrops.concat([
        semantic.fine_drops(vectors[rows], rows, cluster_size, seed, epsilon)
        for rows in members])
    times["fine"] = time.perf_counter() - start
    times["largest coarse"] = float(max(len(m) for m in members))
    return set(found.dropped.tolist()), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="A run folder with ingest and signals.")
    parser.add_argument("--coarse", default="32768,0")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--cluster-size", type=int, default=200)
    parser.add_argument("--epsilon", type=float, default=0.95)
    args = parser.parse_args()
    store = RunStore(args.run_dir.parent, args.run_dir.name)
    every = fit_rows(store, limit=10**12)
    vectors = normalised(fit_features(store, every)).astype(np.float32)
    print(f"{len(vectors):,} training rows, {vectors.shape[1]} dims", flush=True)
    sizes = [int(s) for s in args.coarse.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {}
    for size in sizes:
        for seed in seeds:
            results[size, seed] = timed_drops(vectors, size, seed, args.cluster_size,
                                              args.epsilon)
            print(f"coarse rows {size or 'all'}, seed {seed}: "
                  f"{len(results[size, seed][0]):,} dropped, {results[size, seed][1]}; maxrss "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB",
                  flush=True)
    reference = results.get((0, seeds[0]), (None,))[0]
    lines = ["| coarse clusters of | seed | dropped | coarse s | fine s | largest coarse cluster | "
             f"dropped rows shared with plain SemDeDup, seed {seeds[0]} (Jaccard) |",
             "|---|---|---|---|---|---|---|"]
    for (size, seed), (dropped, times) in results.items():
        both = len(dropped & reference) if reference is not None else 0
        shared = (f"{both:,} ({both / max(1, len(dropped | reference)):.3f})"
                  if reference is not None else "-")
        lines.append(f"| {size or 'all (plain)'} | {seed} | {len(dropped):,} | "
                     f"{times['coarse']:.1f} | {times['fine']:.1f} | "
                     f"{times['largest coarse']:,.0f} | {shared} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
