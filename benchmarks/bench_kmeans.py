"""`kmeans` prototypes: scikit-learn's k-means (the old implementation) against faiss's.

Side by side in one run, on the same embeddings (SST-2 train, all-MiniLM-L6-v2,
through the real ingest and signals stages, cached in --runs-dir), the same
threads for both (--threads, default the cores this process may use), per seed
(both classes, the budget ranked x3 as the synthesize stage does):
1. wall time of the selection;
2. selection quality: a linear probe (C = 1) on the selected rows, evaluation split.

    python benchmarks/bench_kmeans.py --data-dir ../shared/datasets --runs-dir runs

Prints a table and writes JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from distill_core.artifacts.store import RunStore
from distill_core.config import load_config
from distill_core.evaluate.linear_probe import linear_probe
from distill_core.pipeline.order import run_pipeline
from distill_core.pipeline.stage import StageContext
from distill_core.signals.embeddings import split_features
from distill_core.synthesize.base import ClassData, ClassSelection, register, select_per_class
from distill_core.synthesize.kmeans_prototypes import (
    nearest_distinct,
    next_members,
    squared_distances,
    usable_cores,
)
from distill_core.synthesize.stage import select_candidates  # noqa: F401 (registers methods)
from tasks.executors import make_executor


def train_and_eval(dataset: str, data_dir: str | None, runs_dir: str
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Features and label ids of the train and eval splits, embedded with MiniLM through the
    ingest and signals stages (from the cache when there)."""
    overrides = [f"data.dataset={dataset}", "signals.model=all-MiniLM-L6-v2",
                 "run.name=static-bench"] + ([f"data.data_dir={data_dir}"] if data_dir else [])
    cfg = load_config(None, overrides)
    store = RunStore(runs_dir, cfg.run_id())
    run_pipeline(StageContext(cfg, store, make_executor(cfg.compute)), until="signals")
    corpus, embeddings = store.read("ingest"), store.read("signals")
    out = {}
    for split in ("train", "eval"):
        rows, x = split_features(corpus, embeddings, split)
        out[split] = (x, rows.column("label_id").to_numpy())
    return out


@register("kmeans_sklearn")
def sklearn_prototypes(data: ClassData, budget: int, seed: int, n_init: int = 3,
                       max_iter: int = 300, ranked: int | None = None,
                       threads: int | None = None) -> ClassSelection:
    """The previous implementation: scikit-learn KMeans (k-means++), same prototype rule."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    x = data.features.astype(np.float32, copy=False)
    with threadpool_limits(threads or usable_cores()):
        model = KMeans(n_clusters=budget, init="k-means++", n_init=n_init, max_iter=max_iter,
                       random_state=seed)
        assignment = model.fit_predict(x)
    order = np.argsort(-np.bincount(assignment, minlength=budget), kind="stable")
    centroids = model.cluster_centers_.astype(np.float32)
    indices, distances = nearest_distinct(x, centroids, order)
    extra = min(ranked or budget, len(x)) - budget
    if extra > 0:
        taken = np.zeros(len(x), dtype=bool)
        taken[indices] = True
        more, more_d = next_members(squared_distances(x, centroids), assignment, order, taken,
                                    extra)
        indices, distances = np.concatenate([indices, more]), np.concatenate([distances, more_d])
    return ClassSelection(indices=indices, scores=distances)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--dataset", default="sst2")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--oversample", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--faiss-iters", default="300",
                        help="faiss max_iter values to run (sklearn stops at convergence).")
    parser.add_argument("--out", default="bench-out/kmeans.json")
    args = parser.parse_args()
    threads = args.threads or usable_cores()
    arrays = train_and_eval(args.dataset, args.data_dir, args.runs_dir)
    train_x, train_y = arrays["train"]
    eval_x, eval_y = arrays["eval"]
    labels = sorted(set(train_y.tolist()))
    variants = [("sklearn", "kmeans_sklearn", 300)] + [
        (f"faiss niter={n}", "kmeans", int(n)) for n in args.faiss_iters.split(",")]
    rows = []
    for name, method, iters in variants:
        seconds, scores = [], []
        for seed in range(args.seeds):
            start = time.perf_counter()
            picked = select_per_class(method, train_x, train_y, args.per_class, seed,
                                      {"n_init": 3, "max_iter": iters, "threads": threads},
                                      args.oversample)
            seconds.append(time.perf_counter() - start)
            top = picked.indices[picked.ranks < args.per_class]
            scores.append(linear_probe(train_x[top], train_y[top], eval_x, eval_y,
                                       labels).accuracy)
            print(f"{name} seed {seed}: {seconds[-1]:.2f} s, accuracy {scores[-1]:.4f}",
                  flush=True)
        rows.append({"variant": name, "seconds_per_seed": seconds, "accuracy": scores,
                     "seconds_mean": float(np.mean(seconds)),
                     "accuracy_mean": float(np.mean(scores)),
                     "accuracy_std": float(np.std(scores))})
    base = rows[0]
    print(f"\n{args.dataset} train {train_x.shape}, {args.per_class}/class ranked "
          f"x{args.oversample}, {threads} threads, {args.seeds} seeds\n"
          "| k-means | s per seed | x faster than sklearn | LP accuracy % | Δ vs sklearn |\n"
          "|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['seconds_mean']:.2f} | "
              f"{base['seconds_mean'] / r['seconds_mean']:.1f} | "
              f"{100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f} | "
              f"{100 * (r['accuracy_mean'] - base['accuracy_mean']):+.1f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": int(len(train_x)), "dim": int(train_x.shape[1]),
                                          "threads": threads, "per_class": args.per_class,
                                          "results": rows}, indent=2))


if __name__ == "__main__":
    main()
