"""A process-wide progress sink, so the CLI can draw bars for stages run inside Prefect tasks.

Prefect hashes task arguments; a callback is not an argument but a reporter
registered here by whoever drives the flow (the CLI's rich progress bars).
"""

from __future__ import annotations

from distill_core.pipeline.stage import ProgressFn

_reporter: ProgressFn | None = None


def set_reporter(reporter: ProgressFn | None) -> None:
    global _reporter
    _reporter = reporter


def report(stage: str, done: float, total: float | None, note: str = "") -> None:
    if _reporter is not None:
        _reporter(stage, done, total, note)
