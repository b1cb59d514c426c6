"""Fault injection, for the reliability tests and for drills on a real cluster.

`faults.kill_in_stage: NAME` sends SIGKILL to this process in the middle of
stage NAME: after its artifact is written to the temporary folder, before it
is published (the worst moment for a crash). `faults.kill_actor_after_batches`
makes a Ray encoder actor exit abruptly after that many batches, once per
`marker_dir` (the first actor to get there leaves a marker file), so the
restart and retry path runs. Faults are not part of the run id: the same
command without them resumes the same run.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from distill_core.config import FaultsSection


def publish_hook(faults: FaultsSection) -> Callable[[str], None] | None:
    """A hook for `RunStore.write_stage` that kills the process before `kill_in_stage` lands."""
    if faults.kill_in_stage is None:
        return None
    target = faults.kill_in_stage

    def hook(stage: str) -> None:
        if stage == target:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def claim_once(marker_dir: str, name: str) -> bool:
    """True for the first caller across processes (atomic create of a marker file)."""
    Path(marker_dir).mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(Path(marker_dir) / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(handle)
    return True
