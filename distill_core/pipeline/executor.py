"""Where the work runs: one interface for batches over an actor pool and tasks over items.

A stage never asks which backend it is on. It hands the executor an actor
(a class built once per worker, called on batches of rows) or a function (run
once per item: a seed, a group of cells), with the resources the stage
declares. `LocalExecutor` runs everything in this process; the Ray executor in
`tasks/` runs the same actors on a Ray Data actor pool and the same functions
as Ray tasks. Fault drills are executor hooks, not code in the stages' loops.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from distill_core.artifacts.location import Where

Columns = dict[str, np.ndarray]
Progress = Callable[[int, int], None]  # (rows done, rows total)


@dataclass(frozen=True)
class Resources:
    """What one worker (actor or task) of a stage asks for."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int | None = None
    workers: int = 1  # actors in a pool, or tasks at once (Ray schedules the rest)


@dataclass(frozen=True)
class ActorSpec:
    """An actor class and its constructor arguments (picklable: shipped to remote workers).

    The class is built once per worker and called as `actor(columns) -> columns` on
    batches of rows; `role` names it for progress and fault drills (`signals`, `generate`).
    """

    cls: type
    kwargs: dict[str, Any]
    role: str


@dataclass
class BatchResult:
    """The actor's output columns in input order, rows per worker, and timings."""

    columns: Columns
    workers: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FaultHooks:
    """Fault drills (tests and cluster drills); none by default.

    `kill_before_publish`: SIGKILL this process just before that stage publishes.
    `kill_actor_after`: per actor role, a pool actor exits abruptly after that many
    batches (once per `marker_dir`), so the restart-and-retry path runs.
    """

    kill_before_publish: str | None = None
    kill_actor_after: dict[str, int] = field(default_factory=dict)
    marker_dir: str | None = None


def worker_name() -> str:
    """host:pid of this process, as rows record where they were computed."""
    return f"{os.uname().nodename[:12]}:{os.getpid()}"


class Executor(ABC):
    """Runs a stage's actors and tasks with the resources the stage declares."""

    name: str = "executor"
    # Whether `map_parquet`'s workers read the parts themselves (a stage then hands them the
    # paths rather than feeding rows it read): Ray's do; in process it is the same reading.
    reads_parts: bool = False

    def __init__(self, hooks: FaultHooks | None = None) -> None:
        self.hooks = hooks or FaultHooks()

    @abstractmethod
    def map_batches(self, actor: ActorSpec, columns: Columns, resources: Resources,
                    block_rows: int, progress: Progress | None = None,
                    order: np.ndarray | None = None) -> BatchResult:
        """`actor` over every row of `columns` (equal-length arrays); output in input order.

        `block_rows` rows go to a pool worker at a time; `order` (a permutation) says
        which rows to group into blocks (e.g. by length, so batches pad little).
        """

    @abstractmethod
    def map_parquet(self, actor: ActorSpec, parts: Sequence[Where], columns: list[str],
                    resources: Resources, block_rows: int) -> Iterator[BatchResult]:
        """`actor` over the rows of the Parquet `parts` (`columns` only), `block_rows` rows
        at a time, read where the actor runs; yields each block's output in read order
        (parts in the order given, rows in file order), with the rows per worker.

        The caller passes only the parts a manifest names and never holds the input; it
        should still check the output's row keys against the input's, as the order is the
        executor's promise, not a property of the data."""

    @abstractmethod
    def map_tasks(self, fn: Callable[..., Any], items: Sequence[Any], resources: Resources,
                  shared: Any = None) -> list[tuple[Any, str]]:
        """`fn(shared, item)` for every item (`fn(item)` without `shared`); (result, where)."""

    def run_task(self, fn: Callable[..., Any], resources: Resources, *args: Any,
                 progress: Callable[..., None] | None = None) -> Any:
        """One call of `fn(*args)` on a worker with `resources` (e.g. a GPU training job);
        in process, `fn` also gets `progress=` (a remote worker cannot report back)."""
        [(result, _)] = self.map_tasks(_call_with_args, [args], resources, fn)
        return result

    def before_publish(self, stage: str) -> None:
        """Called by the stage runner just before `stage` publishes (fault drills)."""
        if self.hooks.kill_before_publish == stage:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def numpy_columns(table: pa.Table) -> Columns:
    """A table as the numpy columns an actor takes (strings as object arrays, None for null),
    as Ray Data's `numpy` batch format gives them."""
    return {name: table.column(name).to_numpy(zero_copy_only=False)
            for name in table.column_names}


def _call_with_args(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return fn(*args)


class LocalExecutor(Executor):
    """Everything in this process: one actor called on all rows at once (the actor batches
    internally), tasks one after another. The last actor of each class is kept, so stages
    that embed again (generate after signals) load the model once per process."""

    name = "local"
    _actors: dict[type, tuple[str, Any]] = {}

    def __init__(self, hooks: FaultHooks | None = None, torch_threads: int | None = None) -> None:
        super().__init__(hooks)
        self.torch_threads = torch_threads

    def map_batches(self, actor: ActorSpec, columns: Columns, resources: Resources,
                    block_rows: int, progress: Progress | None = None,
                    order: np.ndarray | None = None) -> BatchResult:
        start = time.perf_counter()
        instance = self._instance(actor)
        instance.progress = progress  # local actors report rows done as they go
        out = instance(columns)
        rows = len(next(iter(columns.values()))) if columns else 0
        return BatchResult(out, {"local": rows},
                           {"total_s": round(time.perf_counter() - start, 3)})

    def _instance(self, actor: ActorSpec) -> Any:
        """The actor built once (or the one kept from the last call with the same kwargs)."""
        if self.torch_threads:
            import torch

            torch.set_num_threads(self.torch_threads)
        key = repr(sorted(actor.kwargs.items()))
        kept = LocalExecutor._actors.get(actor.cls)
        instance = kept[1] if kept is not None and kept[0] == key else actor.cls(**actor.kwargs)
        LocalExecutor._actors[actor.cls] = (key, instance)
        instance.where = "local"
        return instance

    def map_parquet(self, actor: ActorSpec, parts: Sequence[Where], columns: list[str],
                    resources: Resources, block_rows: int) -> Iterator[BatchResult]:
        from distill_core.artifacts.store import part_file

        instance = self._instance(actor)
        instance.progress = None
        for path in parts:
            handle = part_file(path)
            for batch in (b for g in range(handle.metadata.num_row_groups)  # one group held
                          for b in handle.iter_batches(batch_size=max(block_rows, 1),
                                                       row_groups=[g], columns=columns)):
                start = time.perf_counter()
                out = instance(numpy_columns(pa.Table.from_batches([batch])))
                yield BatchResult(out, {"local": batch.num_rows},
                                  {"total_s": round(time.perf_counter() - start, 3)})

    def map_tasks(self, fn: Callable[..., Any], items: Sequence[Any], resources: Resources,
                  shared: Any = None) -> list[tuple[Any, str]]:
        call = (lambda item: fn(item)) if shared is None else (lambda item: fn(shared, item))
        return [(call(item), "local") for item in items]

    def run_task(self, fn: Callable[..., Any], resources: Resources, *args: Any,
                 progress: Callable[..., None] | None = None) -> Any:
        return fn(*args) if progress is None else fn(*args, progress=progress)
