"""`auto`'s cross-validation folds in worker processes: one fold per task, on every core.

Each fold is independent (its rows, seed and recipes are its arguments), and most of a
fold's time is `bilevel`'s probe refinement, which runs on one BLAS thread and holds the GIL
between its small products: threads do not overlap it, processes do. The workers are
joblib's loky processes: started for each cross-validation (about 2-3 s: numpy,
scikit-learn and the selectors imported in each) and shut down when it ends
(`release_fold_workers`), before the chosen recipe reads the pool, which needs that memory
more than the next cross-validation needs warm workers (two held 1.4 GB together on a
1M-row pool, benchmarks/RESULTS.md; they are not counted in the stage manifest's
`peak_rss_mb`, which is this process's). Each runs its fold with `threads` BLAS
and OpenMP threads (default `cores // workers`; k-means' own thread setting is lowered to
it too, `worker_settings`), so that the workers together use the cores this process may
run on, no more. The results come back in the folds' order, so the choice does not depend
on where the folds ran, up to the last bits of a BLAS reduction split over another number
of threads. `compute.cv_workers: 1` runs the folds in this process (measured slower here
down to 300 rows, benchmarks/RESULTS.md, "auto's fold workers on small pools").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from threadpoolctl import threadpool_limits

from distill_core.synthesize.auto_cv import AutoSettings, FoldMap, serial_folds
from distill_core.synthesize.kmeans_prototypes import available_cores


def fold_workers(setting: int | None, folds: int) -> int:
    """Processes for `folds` folds: `setting` (`compute.cv_workers`), or one per core this
    process may use; never more than the folds."""
    return max(1, min(setting or available_cores(), folds))


def worker_threads(workers: int) -> int:
    """BLAS / OpenMP threads of each of `workers` fold workers."""
    return max(1, available_cores() // workers)


def worker_settings(settings: AutoSettings, workers: int) -> AutoSettings:
    """`settings` with k-means' threads (default: every core) lowered to a worker's share
    when the folds run in `workers` processes; k-means' threads do not change its picks'
    rule, and `synthesize.kmeans.threads` is not part of the run id."""
    kmeans = settings.params.get("kmeans", {})
    if workers <= 1 or kmeans.get("threads"):
        return settings
    return replace(settings, params={**settings.params, "kmeans": {
        **kmeans, "threads": worker_threads(workers)}})


def _with_threads(function: Callable[..., Any], threads: int, *args: Any) -> Any:
    with threadpool_limits(limits=threads):
        return function(*args)


def fold_map(workers: int, threads: int | None = None) -> FoldMap:
    """Runs the folds in `workers` processes (1: in this process, one after another), each
    with `threads` BLAS / OpenMP threads (default `worker_threads(workers)`)."""
    if workers <= 1:
        return serial_folds
    per_worker = threads or worker_threads(workers)

    def run(function: Callable[..., dict[str, float]], jobs: Iterable[tuple]
            ) -> list[dict[str, float]]:
        from joblib import Parallel, delayed

        # max_nbytes=None: arguments are pickled, never memory-mapped read-only files; the
        # jobs are built as joblib dispatches them (2 per worker ahead), not all at once
        return Parallel(n_jobs=workers, backend="loky", max_nbytes=None)(
            delayed(_with_threads)(function, per_worker, *job) for job in jobs)

    return run


def release_fold_workers() -> None:
    """Shut the fold workers down (they are joblib's reusable loky executor): their memory
    goes back before the chosen recipe reads the pool. The next cross-validation starts
    them again."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
