"""`bilevel`'s probe refinement as it is (probe fitted in its rows' span, `row_space_probe.py`,
BLAS on one thread) against the code before (scikit-learn's `LogisticRegression` fit, BLAS
threads as they were), and each change alone, side by side in one process.

On a finished run's pool (`clean` rows, `signals` features, as `bench_probe_refine.py` reads
them), for each shape (the whole pool; a cross-validation pool of `auto`: 2/3 of a
stratified 4,000-row sample) and seed, `bilevel` with its defaults runs once per variant,
alternating. Reports the medians of the wall times, their ratios to the code before, how
many seeds picked the same rows as it, and the evaluation probe's accuracy of each
variant's sets on the run's evaluation split (mean ± std over seeds).

    python benchmarks/bench_row_space_probe.py RUNS/quickstart-... --per-class 10 \
        --seeds 0 1 2 --out bench-out/row_space_probe.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's code
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_probe_refine import picks_of, pool_and_eval  # noqa: E402

from distill_core.evaluate.linear_probe import linear_probe  # noqa: E402
from distill_core.evaluate.probe_c import stratified_subsample  # noqa: E402
from distill_core.signals.teacher import fit_teacher  # noqa: E402
from distill_core.synthesize import probe_refine  # noqa: E402
from distill_core.synthesize.base import ClassData, select_per_class  # noqa: E402

ROW_SPACE = probe_refine.fit_row_space_probe
ONE_THREAD = probe_refine.one_blas_thread


def sklearn_fit(x: np.ndarray, y: np.ndarray, c: float, max_iter: int):  # noqa: ANN201
    """The code before: scikit-learn's fit (convergence warnings silenced as it did)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_teacher(x, y, c, max_iter)


VARIANTS = {  # name -> (probe fit, BLAS threads during the refinement)
    "before": (None, nullcontext),  # scikit-learn, threads as they were
    "sklearn_one_thread": (None, ONE_THREAD),
    "row_space_threads": (ROW_SPACE, nullcontext),
    "now": (ROW_SPACE, ONE_THREAD),
}


def run_bilevel(variant: str, x: np.ndarray, y: np.ndarray, per_class: int, seed: int
                ) -> tuple[float, np.ndarray]:
    fit, threads = VARIANTS[variant]
    probe_refine.fit_row_space_probe = fit or sklearn_fit
    probe_refine.one_blas_thread = threads
    started = time.perf_counter()
    selection = select_per_class("bilevel", ClassData(x), y, per_class, seed)
    return time.perf_counter() - started, picks_of(selection, per_class)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("bench-out/row_space_probe.json"))
    args = parser.parse_args()
    x, y, eval_x, eval_y = pool_and_eval(args.run)
    classes = sorted(set(y.tolist()) | set(eval_y.tolist()))
    sample = np.random.default_rng(0).permutation(stratified_subsample(y, 0, 4000))
    cv_pool = sample[: len(sample) * 2 // 3]
    shapes = {"whole pool": np.arange(len(y)), "cross-validation pool": np.sort(cv_pool)}
    report = []
    for shape, rows in shapes.items():
        sx, sy = x[rows], y[rows]
        times = {name: [] for name in VARIANTS}
        accuracy = {name: [] for name in VARIANTS}
        same = dict.fromkeys(VARIANTS, 0)
        for seed in args.seeds:
            picked = {}
            for name in VARIANTS:
                seconds, picks = run_bilevel(name, sx, sy, args.per_class, seed)
                times[name].append(seconds)
                picked[name] = sorted(picks.tolist())
                accuracy[name].append(100 * linear_probe(sx[picks], sy[picks], eval_x, eval_y,
                                                         classes, C=1.0).accuracy)
            for name in VARIANTS:
                same[name] += int(picked[name] == picked["before"])
        medians = {k: statistics.median(v) for k, v in times.items()}
        row = {"shape": shape, "rows": int(len(rows)), "per_class": args.per_class,
               "seeds": args.seeds, "median_s": {k: round(v, 2) for k, v in medians.items()},
               "speedup_over_before": {k: round(medians["before"] / v, 2)
                                       for k, v in medians.items()},
               "same_picks_as_before": {k: f"{v}/{len(args.seeds)}" for k, v in same.items()},
               "eval_accuracy": {k: (round(float(np.mean(v)), 2), round(float(np.std(v)), 2))
                                 for k, v in accuracy.items()}}
        report.append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
