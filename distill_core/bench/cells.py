"""Grid cells: one learner, one seed, one distilled set (or the full split), one score.

A cell's key hashes everything its score depends on: the learner's settings,
the seed, hard or soft labels, and the fingerprints of the distilled set and
the evaluation data. Each scored cell is saved at once as its own small JSON
file (written to a temporary name, then renamed), so an interrupted grid
resumes by skipping the cells on disk and never scores one twice.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow.compute as pc

from distill_core.artifacts.store import RunStore
from distill_core.config import stable_hash
from distill_core.evaluate.learners import LearnerData, LearnerSpec, score_learner
from distill_core.generate.features import generated_features
from distill_core.signals.embeddings import pair_texts, split_features

FULL = "full"
CELL_VERSION = 1  # bump when a learner's score for the same inputs changes


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
    return stable_hash({"version": CELL_VERSION, "learner": learner.identity(), "seed": seed,
                        "labels": labels, "dataset": dataset, "method": method,
                        "per_class": per_class,
                        "fingerprints": fingerprints})[:24]


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
    """A run folder's training split, evaluation split and distilled sets, read once."""

    def __init__(self, run_dir: str) -> None:
        store = RunStore.open(run_dir)
        corpus, embeddings = store.read("ingest"), store.read("signals")
        self.train, self.train_x = split_features(corpus, embeddings, "train")
        evaluation, eval_x = split_features(corpus, embeddings, "eval")
        if evaluation.num_rows == 0:
            raise RuntimeError(f"{run_dir}: the evaluation split has no usable rows")
        self.evaluation = _learner_data(evaluation, eval_x)
        self.labels = list(range(len((store.manifest("ingest") or {})["label_names"])))
        self.position = {e: i for i, e in enumerate(self.train.column("example_id").to_pylist())}
        self.distilled = store.read("filter") if store.manifest("filter") else None
        # Distilled rows' features: the training split's, or a generated row's own.
        self.pool_x = self.train_x
        generated = generated_features(store)
        if generated is not None:
            self.pool_x = generated.extend(self.position, self.train_x)

    def training_set(self, cell: Cell) -> tuple[LearnerData, np.ndarray | None,
                                                  np.ndarray | None]:
        """(data, soft targets or None, weights or None) that the cell trains on."""
        if cell.method == FULL:
            return _learner_data(self.train, self.train_x), None, None
        assert self.distilled is not None
        subset = self.distilled.filter(pc.equal(self.distilled.column("replicate"),
                                                cell.replicate))
        rows = np.fromiter((self.position[e] for e in subset.column("example_id").to_pylist()),
                           dtype=np.int64, count=subset.num_rows)
        weights = subset.column("weight").to_numpy()
        weights = None if np.allclose(weights, 1.0) else weights
        soft = None
        if cell.labels == "soft":
            soft = np.asarray(subset.column("soft_label").to_pylist(), dtype=np.float64)
        return _learner_data(subset, self.pool_x[rows]), soft, weights


def _learner_data(table, x: np.ndarray) -> LearnerData:
    return LearnerData(texts=table.column("text").to_pylist(), pairs=pair_texts(table), x=x,
                       y=table.column("label_id").to_numpy())


def cell_path(cells_dir: str | Path, key: str) -> Path:
    return Path(cells_dir) / f"{key}.json"


def load_cell(cells_dir: str | Path, key: str) -> dict[str, Any] | None:
    path = cell_path(cells_dir, key)
    return json.loads(path.read_text()) if path.is_file() else None


def _save_cell(cells_dir: str | Path, row: dict[str, Any]) -> None:
    path = cell_path(cells_dir, row["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(row, sort_keys=True))
    os.replace(tmp, path)


def score_cells(cells: Iterable[Cell], learners: dict[str, LearnerSpec], cells_dir: str,
                kill_after: int | None = None,
                progress: Callable[[Cell, dict[str, Any]], None] | None = None
                ) -> list[dict[str, Any]]:
    """Score the cells not yet on disk (grouped by run folder), saving each as it finishes."""
    rows, data, scored = [], {}, 0
    for cell in sorted(cells, key=lambda c: c.run_dir):
        if (done := load_cell(cells_dir, cell.key)) is not None:
            rows.append(done)
            continue
        if cell.run_dir not in data:
            data = {cell.run_dir: RunData(cell.run_dir)}  # one run folder in memory at a time
        run = data[cell.run_dir]
        train, soft, weights = run.training_set(cell)
        start = time.perf_counter()
        with PeakMemory() as memory:
            score = score_learner(learners[cell.learner], train, run.evaluation, run.labels,
                                  cell.seed, soft_targets=soft, weights=weights)
        row = {**asdict(cell), "n_train": score.n_train, "accuracy": score.accuracy,
               "macro_f1": score.macro_f1, "converged": score.converged, "note": score.note,
               "wall_time_s": round(time.perf_counter() - start, 3),
               "peak_rss_mb": round(memory.peak_mb, 1), "n_eval": len(run.evaluation.y)}
        _save_cell(cells_dir, row)
        rows.append(row)
        scored += 1
        if progress is not None:
            progress(cell, row)
        if kill_after is not None and scored >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    return rows
