"""The Ray executor: actors on a Ray Data actor pool, tasks as Ray tasks spread over nodes.

Rows go to the pool in blocks (grouped by the order the stage asks for) with
their input position, so the output is reassembled in input order whatever
the completion order. A pool actor that dies is restarted by Ray Data and its
block retried; fault drills kill one on purpose (`FaultHooks.kill_actor_after`).

`map_parquet` hands Ray Data the Parquet parts a manifest names instead: read tasks on the
cluster read them (one task per slice of a row group, listed from the parts' footers), the
pool maps the blocks, and the driver only receives the outputs. Each row carries its place
in the parts, and the driver hands them on in that order (`ray.data.read_parquet` over
several parts returned blocks out of order at 1M rows here, even with `preserve_order`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from distill_core.artifacts.location import Where, arrow_path
from distill_core.faults import claim_once
from distill_core.pipeline.executor import (
    ActorSpec,
    BatchResult,
    Columns,
    Executor,
    FaultHooks,
    Progress,
    Resources,
)
from tasks.ray_preflight import preflight

__all__ = ["RayExecutor", "ensure_ray", "preflight"]

POSITION, WORKER = "_position", "_worker"
READ_CPUS = 0.25  # a Parquet read task's CPU ask: reads must not wait on the pool's CPUs


def ensure_ray(address: str | None) -> None:
    """Connect to `address`, or start a local Ray once per process (workers reuse it)."""
    import ray

    if ray.is_initialized():
        return
    preflight(address)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
             ignore_reinit_error=True, configure_logging=False)


def _read_units(paths: list[str], filesystem: Any, block_rows: int) -> list[dict[str, Any]]:
    """The read tasks of `map_parquet`: slices of at most `block_rows` rows of each row
    group (from the parts' footers), each with the index of its first row in the parts."""
    import pyarrow.parquet as pq

    units, first, step = [], 0, max(block_rows, 1)
    for path in paths:
        meta = pq.ParquetFile(path, filesystem=filesystem).metadata
        for group in range(meta.num_row_groups):
            size = meta.row_group(group).num_rows
            for offset in range(0, size, step):
                rows = min(step, size - offset)
                units.append({"path": path, "group": group, "offset": offset, "rows": rows,
                              "first": first + offset})
            first += size
    return units


def _read_slices(units: pa.Table, columns: list[str], filesystem: Any) -> pa.Table:
    """Rows of the units' slices (a read task on the cluster), with their place."""
    from distill_core.artifacts.vector_storage import PartFile

    tables = []
    for unit in units.to_pylist():
        rows = PartFile(unit["path"], filesystem=filesystem).read_row_group(
            unit["group"], columns=columns).slice(unit["offset"], unit["rows"])
        first = unit["first"]
        tables.append(rows.append_column(POSITION, pa.array(
            np.arange(first, first + rows.num_rows), pa.int64())))
    return pa.concat_tables(tables)


def _runs(batch: dict[str, np.ndarray]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """A mapped block cut into runs of consecutive rows, each with its first row's place."""
    order = np.argsort(batch[POSITION], kind="stable")
    columns = {k: v[order] for k, v in batch.items()}
    at = columns[POSITION]
    cuts = [0, *(np.flatnonzero(np.diff(at) != 1) + 1).tolist(), len(at)]
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        if hi > lo:
            yield int(at[lo]), {k: v[lo:hi] for k, v in columns.items()}


def _where() -> str:
    import ray

    return f"{ray.get_runtime_context().get_node_id()[:12]}:{os.getpid()}"


class PoolActor:
    """Builds the stage's actor once in a pool worker and calls it on each block."""

    def __init__(self, actor: ActorSpec, torch_threads: int | None, fail_after: int | None,
                 marker_dir: str | None) -> None:
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        self.inner = actor.cls(**actor.kwargs)
        self.inner.where = self.where = _where()
        self.role, self.fail_after, self.marker_dir, self.batches = (actor.role, fail_after,
                                                                     marker_dir, 0)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches += 1
        if (self.fail_after is not None and self.batches > self.fail_after
                and claim_once(self.marker_dir or ".", f"{self.role}-killed")):
            os._exit(1)  # an abrupt worker death in the middle of the work (fault drill)
        out = self.inner({k: v for k, v in batch.items() if k != POSITION})
        rows = len(next(iter(batch.values())))
        position = {POSITION: batch[POSITION]} if POSITION in batch else {}
        return {**out, **position, WORKER: np.asarray([self.where] * rows)}


def _arrow_column(values: np.ndarray) -> pa.Array:
    return pa.array(list(values)) if values.dtype == object else pa.array(values)


def _stacked(parts: list[np.ndarray]) -> np.ndarray:
    parts = [np.stack(p) if p.dtype == object and len(p) and isinstance(p[0], np.ndarray)
             else p for p in parts]
    return np.concatenate(parts)


def _task_with_where(fn: Callable[..., Any], shared: Any, item: Any) -> tuple[Any, str]:
    return (fn(item) if shared is None else fn(shared, item)), _where()


class RayExecutor(Executor):
    """Stages' actors and tasks on a Ray cluster (`address`, or a local Ray on demand)."""

    name = "ray"
    reads_parts = True

    def __init__(self, address: str | None = None, hooks: FaultHooks | None = None,
                 torch_threads: int | None = None) -> None:
        super().__init__(hooks)
        self.address = address
        self.torch_threads = torch_threads

    def map_batches(self, actor: ActorSpec, columns: Columns, resources: Resources,
                    block_rows: int, progress: Progress | None = None,
                    order: np.ndarray | None = None) -> BatchResult:
        import ray

        ensure_ray(self.address)
        rows = len(next(iter(columns.values())))
        order = np.arange(rows) if order is None else np.asarray(order)
        table = pa.table({POSITION: pa.array(order, pa.int64()),
                          **{k: _arrow_column(v[order]) for k, v in columns.items()}})
        block_rows = max(block_rows, 1)
        dataset = ray.data.from_arrow([table.slice(s, block_rows)
                                       for s in range(0, rows, block_rows)])
        mapped = dataset.map_batches(PoolActor, batch_size=block_rows, batch_format="numpy",
                                     **self._pool(actor, resources, -(-rows // block_rows)))
        start, first_at, first_rows, done = time.perf_counter(), None, 0, 0
        outputs: dict[str, list[np.ndarray]] = {}
        workers: dict[str, int] = {}
        for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            for key, values in batch.items():
                outputs.setdefault(key, []).append(values)
            for worker, count in zip(*np.unique(batch[WORKER], return_counts=True),
                                     strict=True):
                workers[str(worker)] = workers.get(str(worker), 0) + int(count)
            done += len(batch[POSITION])
            if first_at is None:
                first_at, first_rows = time.perf_counter(), done
            if progress is not None:
                progress(done, rows)
        positions = np.concatenate(outputs.pop(POSITION)) if outputs else np.zeros(0, int)
        outputs.pop(WORKER, None)
        if len(positions) != rows or len(set(positions.tolist())) != rows:
            raise RuntimeError(f"Ray returned {len(positions)} rows ({len(set(positions))} "
                               f"distinct) for {rows}")
        back = np.argsort(positions, kind="stable")
        end = time.perf_counter()
        timings = {"total_s": round(end - start, 3)}
        if first_at is not None:
            # The pool's start (processes, imports, model load) happens once per stage; the
            # steady rate is what more actors or more rows scale.
            timings |= {"first_batch_s": round(first_at - start, 3),
                        "steady_rows_per_s": round((rows - first_rows)
                                                   / max(end - first_at, 1e-9), 1)}
        return BatchResult({k: _stacked(v)[back] for k, v in outputs.items()}, workers,
                           timings)

    def _pool(self, actor: ActorSpec, resources: Resources, blocks: int | None
              ) -> dict[str, Any]:
        """`map_batches` arguments for a pool of the stage's actors (at most `blocks`)."""
        import ray

        # Start on the whole pool, not the first actor ready: otherwise a fast first actor can
        # take every block and the other nodes stay idle.
        context = ray.data.DataContext.get_current()
        context.wait_for_min_actors_s = max(context.wait_for_min_actors_s, 600)
        size = resources.workers if blocks is None else min(resources.workers, max(blocks, 1))
        return {"fn_constructor_kwargs": {
                    "actor": actor, "torch_threads": self.torch_threads,
                    "fail_after": self.hooks.kill_actor_after.get(actor.role),
                    "marker_dir": self.hooks.marker_dir},
                "compute": ray.data.ActorPoolStrategy(size=size),
                "num_cpus": resources.cpus, "num_gpus": resources.gpus or None,
                "memory": resources.memory_mb * 2**20 if resources.memory_mb else None}

    def map_parquet(self, actor: ActorSpec, parts: Sequence[Where], columns: list[str],
                    resources: Resources, block_rows: int) -> Iterator[BatchResult]:
        import ray

        if not parts:
            return
        ensure_ray(self.address)
        pool = self._pool(actor, resources, None)  # before any dataset: each copies the context
        located = [arrow_path(p) for p in parts]
        units = _read_units([where for where, _ in located], located[0][1], block_rows)
        if not units:
            return
        # One read task per unit (a slice of a row group, at most `block_rows` rows), each
        # row tagged with its place in the parts, so the order is restored here whatever
        # order Ray reads, maps and returns the blocks in.
        dataset = ray.data.from_items(units, override_num_blocks=len(units))
        dataset.context.execution_options.preserve_order = True
        rows = dataset.map_batches(_read_slices, batch_size=1, batch_format="pyarrow",
                                   fn_kwargs={"columns": columns,
                                              "filesystem": located[0][1]},
                                   num_cpus=READ_CPUS)
        mapped = rows.map_batches(PoolActor, batch_size=None, batch_format="numpy", **pool)
        pending: dict[int, dict[str, np.ndarray]] = {}
        expected = 0
        for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            for first, piece in _runs(batch):
                pending[first] = piece
            while expected in pending:
                piece = pending.pop(expected)
                names, counts = np.unique(piece.pop(WORKER), return_counts=True)
                expected += len(piece.pop(POSITION))
                yield BatchResult(piece, {str(n): int(c) for n, c in zip(names, counts,
                                                                         strict=True)})
        if pending:
            raise RuntimeError(f"Ray returned rows from {min(pending)} on but none at "
                               f"{expected}")

    def map_tasks(self, fn: Callable[..., Any], items: Sequence[Any], resources: Resources,
                  shared: Any = None) -> list[tuple[Any, str]]:
        import ray

        ensure_ray(self.address)
        remote = ray.remote(num_cpus=resources.cpus, num_gpus=resources.gpus or None,
                            memory=resources.memory_mb * 2**20 if resources.memory_mb else None,
                            max_retries=2, scheduling_strategy="SPREAD")(_task_with_where)
        handle = ray.put(shared) if shared is not None else None
        return ray.get([remote.remote(fn, handle, item) for item in items])
