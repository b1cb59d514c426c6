"""Grid cells: one learner, one seed, one distilled set (or the full split), one score.

A cell's key hashes everything its score depends on: the learner's settings,
the seed, hard or soft labels, and the fingerprints of the distilled set and
the evaluation data (for `full`, the contamination settings: full data is the
training split after the run's contamination filter, as in the evaluate stage).
Each scored cell is saved at once as its own small JSON
file (written to a temporary name, then renamed), so an interrupted grid
resumes by skipping the cells on disk and never scores one twice.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from distill_core.artifacts.store import RunStore
from distill_core.evaluate.data import EvaluationData
from distill_core.hashing import stable_hash
from distill_core.learners import LearnerSpec, TrainingRows, score_learner

FULL = "full"
CELL_VERSION = 2  # bump when a learner's score for the same inputs changes


@dataclass(frozen=True)
class Cell:
    """What one score means: dataset, method (or `full`), budget, learner, seed, label mode."""

    dataset: str
    method: str
    per_class: int | None
    learner: str
    seed: int
    replicate: int | None
    labels: str  # "hard" | "soft"
    run_dir: str
    key: str


def cell_key(learner: LearnerSpec, seed: int, labels: str, dataset: str, method: str,
             per_class: int | None, store: RunStore) -> str:
    upstream = ("ingest", "signals") if method == FULL else ("ingest", "signals", "filter")
    fingerprints = {s: (store.manifest(s) or {}).get("fingerprint") for s in upstream}
    identity = {"version": CELL_VERSION, "learner": learner.identity(), "seed": seed,
                "labels": labels, "dataset": dataset, "method": method, "per_class": per_class,
                "fingerprints": fingerprints}
    if method == FULL:
        identity["contamination"] = _run_filters(store).get("contamination")
    if learner.kind == "embeds_finetune" and (learn := store.manifest("learn")) is not None:
        from distill_core.learners.embeds import protocol_of

        identity["embeds_protocol"] = protocol_of(learn)  # its steps follow the family
    return stable_hash(identity)[:24]


def _run_filters(store: RunStore) -> dict[str, Any]:
    """The run's `filter` settings as its filter stage recorded them ({} before it ran)."""
    return ((store.manifest("filter") or {}).get("config") or {}).get("filter") or {}


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)
            self._stop.wait(0.02)

    def __enter__(self) -> PeakMemory:
        self.peak_mb = self._process.memory_info().rss / 2**20
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)


class RunData:
    """A run folder's training pool, evaluation split and distilled sets, read once through
    the reader the evaluate stage uses (`EvaluationData`)."""

    def __init__(self, run_dir: str) -> None:
        self.store = RunStore.open(run_dir)
        self.data = EvaluationData.from_store(self.store)
        self.train, self.train_x = self.data.pool.train, self.data.pool.train_x
        self.evaluation, self.labels = self.data.evaluation, self.data.labels

    def full_set(self) -> TrainingRows:
        """The training split after the run's contamination filter (as the evaluate stage's
        `full`); a run folder whose filter stage recorded no config: the whole split."""
        config = (self.store.manifest("filter") or {}).get("config")
        if config is not None and self.data.filters is None:
            from distill_core.config import RunConfig
            from distill_core.pipeline.stages.evaluate import baseline_filters

            self.data.filters = baseline_filters(RunConfig.model_validate(config), self.store)
        return self.data.pool.sample(self.data.full_subset().rows)

    def training_set(self, cell: Cell) -> TrainingRows:
        """What the cell trains on: the full split, or its replicate on hard or soft labels."""
        if cell.method == FULL:
            return self.full_set()
        assert self.data.distilled is not None and cell.replicate is not None
        rows = self.data.pool.replicate(self.data.distilled, cell.replicate)
        if cell.labels == "hard":
            return rows.hard()
        if rows.soft is None:
            raise RuntimeError(f"{cell.run_dir}: replicate {cell.replicate} carries no soft "
                               "labels for a soft-label cell")
        return rows


def cell_path(cells_dir: str | Path, key: str) -> Path:
    return Path(cells_dir) / f"{key}.json"


DIGEST = "row_sha256"  # a saved cell's hash of its own fields, checked when it is reused


def _digest(row: dict[str, Any]) -> str:
    return stable_hash({k: v for k, v in row.items() if k != DIGEST})


def load_cell(cells_dir: str | Path, key: str) -> dict[str, Any] | None:
    """A scored cell saved under `key`, or None when there is none or it is not what was
    saved (unparseable, another key, fields changed since): then it is scored again."""
    path = cell_path(cells_dir, key)
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(row, dict) or row.get("key") != key or row.get(DIGEST) != _digest(row):
        return None
    return {k: v for k, v in row.items() if k != DIGEST}


def _save_cell(cells_dir: str | Path, row: dict[str, Any]) -> None:
    path = cell_path(cells_dir, row["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({**row, DIGEST: _digest(row)}, sort_keys=True))
    os.replace(tmp, path)


def score_cells(cells: Iterable[Cell], learners: dict[str, LearnerSpec], cells_dir: str,
                progress: Callable[[Cell, dict[str, Any]], None] | None = None
                ) -> list[dict[str, Any]]:
    """Score the cells not yet on disk (grouped by run folder), saving each as it finishes;
    `progress` is called after each newly scored cell is saved."""
    rows, data = [], {}
    for cell in sorted(cells, key=lambda c: c.run_dir):
        if (done := load_cell(cells_dir, cell.key)) is not None:
            rows.append(done)
            continue
        if cell.run_dir not in data:
            data = {cell.run_dir: RunData(cell.run_dir)}  # one run folder in memory at a time
        run = data[cell.run_dir]
        train = run.training_set(cell)
        start = time.perf_counter()
        with PeakMemory() as memory:
            score = score_learner(learners[cell.learner], train, run.evaluation, run.labels,
                                  cell.seed)
        row = {**asdict(cell), "n_train": score.n_train, "accuracy": score.accuracy,
               "macro_f1": score.macro_f1, "converged": score.converged, "note": score.note,
               "wall_time_s": round(time.perf_counter() - start, 3),
               "peak_rss_mb": round(memory.peak_mb, 1), "n_eval": len(run.evaluation.y)}
        _save_cell(cells_dir, row)
        rows.append(row)
        if progress is not None:
            progress(cell, row)
    return rows
