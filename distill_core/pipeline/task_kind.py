"""One pipeline stage, two task kinds: classification and instruction data share a stage name.

`by_task(classic, instruction)` is the stage `PIPELINE` lists: each of its parts
(reads, settings, body, enabled, identity, report) is the classification stage's
unless the config says `data.task: instruction`. Classification fingerprints are
unchanged; an instruction stage's settings carry its task and version, so the two
never share a fingerprint (nor a cache entry). A stage with no instruction
variant (`only_classification`) is simply off for instruction data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.pipeline.runner import upstream_fingerprints
from distill_core.pipeline.stage import Stage, StageContext, StageOutput


def run_task(store: RunStore) -> str:
    """The task kind of the run in `store`, as its ingest manifest's config records it."""
    config = (store.manifest("ingest") or {}).get("config") or {}
    return str((config.get("data") or {}).get("task", "classification"))


def by_task(classic: Stage, instruction: Stage) -> Stage:
    """The stage named `classic.name` whose every part follows the config's task kind."""
    if classic.name != instruction.name:
        raise ValueError(f"{classic.name} and {instruction.name}: one stage, two names")

    def pick(cfg: RunConfig) -> Stage:
        return instruction if cfg.is_instruction else classic

    def settings(cfg: RunConfig) -> Any:
        if not cfg.is_instruction:
            return classic.settings(cfg)
        return {"task": "instruction", "version": instruction.version,
                "settings": instruction.settings(cfg)}

    def body(ctx: StageContext) -> StageOutput:
        return pick(ctx.cfg).body(ctx)

    def identity(cfg: RunConfig, store: RunStore) -> dict[str, str]:
        stage = pick(cfg)
        return (stage.identity(cfg, store) if stage.identity is not None
                else upstream_fingerprints(store, stage.reads(cfg)))

    def report(store: RunStore) -> list[str]:
        stage = instruction if run_task(store) == "instruction" else classic
        return stage.report(store) if stage.report is not None else []

    return replace(
        classic, writes=f"{classic.writes}; instruction data: {instruction.writes}",
        reads=lambda cfg: pick(cfg).reads(cfg), settings=settings, body=body,
        enabled=lambda cfg: pick(cfg).enabled(cfg),
        identity=identity if classic.identity or instruction.identity else None,
        report=report if classic.report or instruction.report else None,
        cached=classic.cached or instruction.cached)


def only_classification(stage: Stage) -> Stage:
    """`stage`, off for instruction data."""
    enabled = stage.enabled
    return replace(stage, enabled=lambda cfg: not cfg.is_instruction and enabled(cfg))
