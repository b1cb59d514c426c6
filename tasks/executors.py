"""The one place where the backend is chosen: `compute.backend` -> an executor."""

from __future__ import annotations

from distill_core.config import ComputeSection, FaultsSection
from distill_core.faults import fault_hooks
from distill_core.pipeline.executor import Executor, LocalExecutor


def make_executor(compute: ComputeSection, faults: FaultsSection | None = None) -> Executor:
    """Local (in process) or Ray (`compute.ray_address`, or a local Ray on demand)."""
    hooks = fault_hooks(faults or FaultsSection())
    if compute.backend == "ray":
        from tasks.ray_executor import RayExecutor

        return RayExecutor(compute.ray_address, hooks, compute.torch_threads)
    return LocalExecutor(hooks, compute.torch_threads)
