"""A stage, declared: name, version, what it reads and writes, caching, resources, body.

The runner (`pipeline/runner.py`) does what every stage shares (fingerprint,
skip or restore, clock, manifest, atomic publish, cache); a stage's body only
computes its table from its inputs. `PIPELINE` (`pipeline/order.py`) is the one
ordered list of stages that the flow, the benchmark, the audit, the CLI and
`textdistill plan` read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.store import RunStore, StageWriter
from distill_core.config import ComputeSection, RunConfig
from distill_core.pipeline.executor import Executor, LocalExecutor, Resources

ProgressFn = Callable[[str, float, float | None, str], None]  # stage, done, total, note


def no_progress(stage: str, done: float, total: float | None, note: str) -> None:
    return None


@dataclass
class StageContext:
    """What a stage body sees: the config, the run folder, where work runs, progress."""

    cfg: RunConfig
    store: RunStore
    executor: Executor = field(default_factory=LocalExecutor)
    progress: ProgressFn = no_progress
    stage: str = ""
    resources: Resources = field(default_factory=Resources)  # set by the runner per stage
    fingerprint: str = ""  # the running stage's, set by the runner
    # Where a streaming body writes its rows batch by batch (set by the runner); a body that
    # returns a whole table leaves it alone.
    writer: StageWriter | None = None

    def report(self, done: float, total: float | None, note: str = "") -> None:
        self.progress(self.stage, done, total, note)


@dataclass
class StageOutput:
    """A stage body's result: its table, rejects, counts and manifest extras. A streaming
    body has written its rows through `StageContext.writer` and returns `table=None`."""

    table: pa.Table | None
    counts: Counts
    rejects: pa.Table | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] | None = None
    inputs: dict[str, Any] = field(default_factory=dict)  # beyond the upstream artifacts
    # Every row came whole from a cross-run cache (signals: each part from its per-part
    # cache): the outcome says "cached", as for a stage restored whole.
    from_cache: bool = False


@dataclass(frozen=True)
class PartReuse:
    """How many of a stage's input parts a per-part cache holds the output of (`plan`)."""

    held: int
    parts: int
    folder: str


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    Attributes:
        name: the run folder's sub-folder and the manifest's `stage`.
        version: bump when the output for the same inputs changes.
        writes: what the artifact holds (for `plan` and the docs).
        reads: the upstream stages it reads, given the config.
        settings: the part of the config its output depends on (fingerprinted).
        body: computes the output from the context.
        enabled: whether the config needs this stage at all.
        cached: kept in the runs folder's cross-run cache (keyed by fingerprint).
        copy_to_cache: whether a computed `cached` stage is also copied whole into that cache
            (signals with its per-part cache: no, its parts are kept there already).
        resources: what each of its workers asks for, from the `compute` section.
        funnel: its rows flow one to one from its input (rows in = out + rejected), so the
            audit balances it (evaluate's rows are fits, not data rows).
        retries: how often the orchestrator retries it (model loading and remote workers
            fail transiently; pure computations do not).
        report: its section of the run report (markdown lines from the run folder), if any.
        identity: what identifies its input when that is not the upstream fingerprints
            (ingest: the source files; signals: the texts' hash), so the cache is keyed
            by content.
        part_reuse: for `plan`, a stage that would compute: how much of it a per-part cache
            already holds, without reading or changing that cache (signals: `PartReuse`).
    """

    name: str
    version: int
    writes: str
    reads: Callable[[RunConfig], tuple[str, ...]]
    settings: Callable[[RunConfig], Any]
    body: Callable[[StageContext], StageOutput]
    enabled: Callable[[RunConfig], bool] = lambda cfg: True
    cached: bool = False
    copy_to_cache: Callable[[RunConfig, RunStore], bool] = lambda cfg, store: True
    resources: Callable[[ComputeSection], Resources] = lambda compute: Resources()
    funnel: bool = True
    retries: int = 0
    report: Callable[[RunStore], list[str]] | None = None
    identity: Callable[[RunConfig, RunStore], dict[str, str]] | None = None
    part_reuse: Callable[[RunConfig, RunStore], PartReuse | None] | None = None
