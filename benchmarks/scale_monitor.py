"""Memory of a child process tree, sampled from the parent, and attributed to the stages.

A thread samples the summed RSS of a process and all its descendants (psutil) every
`interval` seconds with a wall-clock timestamp. After the run, each stage's samples are
those inside its manifest's [started_at, finished_at] interval, so a stage's peak is the
highest tree RSS seen while it ran. Sampling can miss a spike shorter than the interval;
the main process's exact high-water mark (ru_maxrss of the waited child) is recorded next
to it by the caller.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import psutil

MIB = 2**20


def tree_rss(process: psutil.Process) -> tuple[int, int]:
    """(RSS of `process` and its descendants, RSS of `process` alone), in bytes."""
    try:
        main = process.memory_info().rss
        children = process.children(recursive=True)
    except psutil.Error:
        return 0, 0
    total = main
    for child in children:
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total, main


class TreeSampler:
    """Samples (time, tree RSS, main RSS) of process `pid` until stopped."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            total, main = tree_rss(self.process)
            if total:
                self.samples.append((time.time(), total, main))
            self._stop.wait(self.interval)

    def peak_mb(self, start: float = float("-inf"), end: float = float("inf")) -> float | None:
        """Highest tree RSS (MiB) sampled in [start, end], or None without samples there."""
        inside = [total for t, total, _ in self.samples if start <= t <= end]
        return round(max(inside) / MIB, 1) if inside else None

    def peak_main_mb(self) -> float | None:
        return round(max(m for *_, m in self.samples) / MIB, 1) if self.samples else None


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def stage_rows(manifests: dict[str, dict[str, Any]], sampler: TreeSampler, since: float,
               train_rows: int) -> dict[str, dict[str, Any]]:
    """Per stage computed after `since`: wall s, train rows/s, peak tree RSS while it ran;
    stages restored from a cache or resumed are marked reused."""
    out: dict[str, dict[str, Any]] = {}
    for stage, manifest in manifests.items():
        started, finished = epoch(manifest["started_at"]), epoch(manifest["finished_at"])
        if started < since or (manifest.get("cache") or {}).get("hit"):
            out[stage] = {"reused": True}
            continue
        wall = float(manifest["wall_time_s"])
        out[stage] = {"wall_s": round(wall, 2),
                      "rows_per_s": round(train_rows / wall, 1) if wall > 0 else None,
                      "peak_rss_mb": sampler.peak_mb(started, finished),
                      "manifest_peak_rss_mb": manifest.get("peak_rss_mb")}
    return out


def peak_phase(manifests: dict[str, dict[str, Any]], sampler: TreeSampler,
               since: float) -> dict[str, Any]:
    """Where the run's peak tree RSS was sampled: inside a stage computed after `since`, or
    the gap before, between or after them ("after evaluate": the report and the CLI's exit),
    with the main process's RSS and the rest of the tree (Prefect's server) at that moment."""
    if not sampler.samples:
        return {}
    at, total, main = max(sampler.samples, key=lambda sample: sample[1])
    spans = sorted((epoch(m["started_at"]), epoch(m["finished_at"]), stage)
                   for stage, m in manifests.items() if epoch(m["started_at"]) >= since)
    where = "before the first stage"
    for started, finished, stage in spans:
        if at < started:
            break
        where = stage if at <= finished else f"after {stage}"
    return {"where": where, "tree_mb": round(total / MIB, 1), "main_mb": round(main / MIB, 1),
            "others_mb": round((total - main) / MIB, 1)}
