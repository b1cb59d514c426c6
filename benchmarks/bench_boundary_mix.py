"""Issue 14's "mix of prototypes and examples near the teacher's decision boundary", measured
before it is built: k-means prototypes for part of each class's budget, the rest from the
class's rows nearest the teacher's boundary, against k-means and herding alone.

On the pool of a finished run (its `clean` stage and `signals`, read as
`bench_probe_refine.py` reads them), optionally capped to a seeded sample of `--cap` rows:
a stratified, seeded fifth is held out (the training-data protocol choices are made on), the
teacher is the linear probe (C = 1) fitted on the rest, and each set's linear probe (C = 1,
hard labels) is scored on the held-out rows. A mix at fraction f and quantile q picks
round(f x budget) rows of a class as the k-means prototypes (nearest row to each centroid)
of the class's rows the teacher classifies correctly with a margin p(own) - max p(other) at
most that margin's q-quantile, and the rest as the class's k-means prototypes.

    python benchmarks/bench_boundary_mix.py RUNS/pool-a [RUNS/pool-b ...] --cap 12000

Prints, per run and budget, each set's mean accuracy over the seeds and the share of the gap
closed: (set - max(kmeans, herding)) / (full - max(kmeans, herding)).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's code

from benchmarks.bench_probe_refine import picks_of, pool_and_eval, stratified_holdout  # noqa: E402
from distill_core.evaluate.linear_probe import linear_probe  # noqa: E402
from distill_core.signals.teacher import class_logits, fit_teacher, softmax  # noqa: E402
from distill_core.synthesize.base import ClassData, select_per_class  # noqa: E402
from distill_core.synthesize.kmeans_prototypes import kmeans_prototypes  # noqa: E402

CAP_SEED = 7


@dataclass
class Holdout:
    """A pool (capped to a seeded sample), its stratified held-out fifth, and the linear-probe
    teacher's logits (C = 1) on the rest, fitted on the rest."""

    x: np.ndarray
    y: np.ndarray
    rest: np.ndarray
    held: np.ndarray
    classes: list[int]
    logits: np.ndarray


def holdout_pool(run: Path, cap: int) -> Holdout:
    x, y, _, _ = pool_and_eval(run)
    if cap and len(y) > cap:
        keep = np.sort(np.random.default_rng(CAP_SEED).choice(len(y), cap, replace=False))
        x, y = x[keep], y[keep]
    rest, held = stratified_holdout(y)
    classes = list(range(int(y.max()) + 1))
    teacher = fit_teacher(x[rest], y[rest], 1.0, 1000)
    return Holdout(x, y, rest, held, classes,
                   class_logits(teacher, x[rest], len(classes)).astype(np.float64))


def boundary_mix(x: np.ndarray, y: np.ndarray, p: np.ndarray, budget: int, seed: int,
                 fraction: float, quantile: float) -> np.ndarray:
    """Row indices of the mixed set (module doc)."""
    picked: list[int] = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        margin = p[rows, c] - np.delete(p[rows], c, axis=1).max(axis=1)
        near = round(budget * fraction)
        if budget - near:
            chosen = kmeans_prototypes(ClassData(x[rows]), budget - near, seed)
            picked += rows[chosen.indices[:budget - near]].tolist()
        if near:
            right = np.flatnonzero(margin > 0)
            close = right[margin[right] <= np.quantile(margin[right], quantile)]
            close = close[~np.isin(rows[close], picked)]
            chosen = kmeans_prototypes(ClassData(x[rows[close]]), near, seed + 1)
            picked += rows[close[chosen.indices[:near]]].tolist()
    return np.asarray(picked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished run folders")
    parser.add_argument("--cap", type=int, default=0, help="a seeded sample of this many pool "
                        "rows (0: the whole pool)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.2, 0.4, 0.6])
    parser.add_argument("--quantiles", type=float, nargs="+", default=[0.1, 0.3])
    args = parser.parse_args()
    for run in args.runs:
        pool = holdout_pool(run, args.cap)
        x, y, held, classes = pool.x, pool.y, pool.held, pool.classes
        xr, yr = x[pool.rest], y[pool.rest]
        p = softmax(pool.logits)
        full = linear_probe(xr, yr, x[held], y[held], classes).accuracy
        print(f"{run.name}: {len(y)} pool rows, full {100 * full:.1f}", flush=True)
        for budget in args.budgets:
            scores: dict[str, list[float]] = {}
            for seed in args.seeds:
                sets = {m: picks_of(select_per_class(m, xr, yr, budget, seed), budget)
                        for m in ("kmeans", "herding")}
                for f in args.fractions:
                    for q in args.quantiles:
                        sets[f"mix f={f} q={q}"] = boundary_mix(xr, yr, p, budget, seed, f, q)
                for name, rows in sets.items():
                    scores.setdefault(name, []).append(
                        linear_probe(xr[rows], yr[rows], x[held], y[held], classes).accuracy)
            means = {name: statistics.mean(v) for name, v in scores.items()}
            best = max(means["kmeans"], means["herding"])
            print(f"  {budget}/class: " + ", ".join(
                f"{name} {100 * m:.1f} ({100 * (m - best) / (full - best):+.0f} %)"
                for name, m in means.items()), flush=True)


if __name__ == "__main__":
    main()
