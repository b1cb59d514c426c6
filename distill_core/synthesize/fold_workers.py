"""`auto`'s cross-validation folds in worker processes: one fold per task, on every core.

Each fold is independent (its rows, seed and recipes are its arguments), and most of a
fold's time is `bilevel`'s probe refinement, which runs on one BLAS thread and holds the GIL
between its small products: threads do not overlap it, processes do. The workers are
joblib's reusable loky processes (started once per process, about 2-3 s, kept while idle);
each runs its fold with `cores // workers` BLAS and OpenMP threads so that the workers
together use the cores this process may run on, no more. The results come back in the
folds' order, so the choice does not depend on where the folds ran (beyond the last bits
of a BLAS reduction split over a different number of threads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from threadpoolctl import threadpool_limits

from distill_core.synthesize.auto_cv import FoldMap, serial_folds
from distill_core.synthesize.kmeans_prototypes import available_cores


def fold_workers(setting: int | None, folds: int) -> int:
    """Processes for `folds` folds: `setting` (`compute.cv_workers`), or one per core this
    process may use; never more than the folds."""
    return max(1, min(setting or available_cores(), folds))


def _with_threads(function: Callable[..., Any], threads: int, *args: Any) -> Any:
    with threadpool_limits(limits=threads):
        return function(*args)


def fold_map(workers: int) -> FoldMap:
    """Runs the folds in `workers` processes (1: in this process, one after another)."""
    if workers <= 1:
        return serial_folds

    def run(function: Callable[..., dict[str, float]], jobs: list[tuple]
            ) -> list[dict[str, float]]:
        from joblib import Parallel, delayed

        threads = max(1, available_cores() // workers)
        # max_nbytes=None: arguments are pickled, never memory-mapped read-only files
        return Parallel(n_jobs=workers, backend="loky", max_nbytes=None)(
            delayed(_with_threads)(function, threads, *job) for job in jobs)

    return run
