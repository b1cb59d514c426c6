"""Fault injection, for the reliability tests and for drills on a real cluster.

The `faults` config section becomes the executor's `FaultHooks`:
`faults.kill_in_stage: NAME` sends SIGKILL to this process in the middle of
stage NAME (after its artifact is written to the temporary folder, before it is
published: the worst moment for a crash); `kill_actor_after_batches` and
`kill_generator_after_shards` make a pool actor of the signals or generate stage
exit abruptly after that many batches, once per `marker_dir` (the first actor
to get there leaves a marker file `<role>-killed`), so the restart and retry
path runs. Actor faults need a pool (the Ray executor); in process there is no
actor to restart. Faults are not part of the run id: the same command without
them resumes the same run.
"""

from __future__ import annotations

import os
from pathlib import Path

from distill_core.config import FaultsSection
from distill_core.pipeline.executor import FaultHooks


def fault_hooks(faults: FaultsSection) -> FaultHooks:
    """The executor hooks that a `faults` section asks for."""
    actors = {"signals": faults.kill_actor_after_batches,
              "generate": faults.kill_generator_after_shards}
    return FaultHooks(kill_before_publish=faults.kill_in_stage,
                      kill_actor_after={k: v for k, v in actors.items() if v is not None},
                      marker_dir=faults.marker_dir)


def claim_once(marker_dir: str, name: str) -> bool:
    """True for the first caller across processes (atomic create of a marker file)."""
    Path(marker_dir).mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(Path(marker_dir) / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(handle)
    return True
