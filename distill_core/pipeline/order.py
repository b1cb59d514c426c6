"""The pipeline: the one ordered list of stages, and what a config makes of it.

The Prefect flow, the benchmark's preparation, the audit, the CLI's progress
display, the report and `textdistill plan` all read `PIPELINE`; adding a stage
is one module in `pipeline/stages/` and one entry here.
"""

from __future__ import annotations

from distill_core.config import RunConfig
from distill_core.pipeline.runner import StageOutcome, run_stage
from distill_core.pipeline.stage import Stage, StageContext
from distill_core.pipeline.stages.clean import CLEAN
from distill_core.pipeline.stages.evaluate import EVALUATE
from distill_core.pipeline.stages.filter import FILTER
from distill_core.pipeline.stages.generate import GENERATE
from distill_core.pipeline.stages.ingest import INGEST
from distill_core.pipeline.stages.instruct_evaluate import INSTRUCTION_EVALUATE
from distill_core.pipeline.stages.instruct_generate import INSTRUCTION_GENERATE
from distill_core.pipeline.stages.instruct_ingest import INSTRUCTION_INGEST
from distill_core.pipeline.stages.instruct_reference import INSTRUCTION_REFERENCE
from distill_core.pipeline.stages.instruct_synthesize import (
    INSTRUCTION_FILTER,
    INSTRUCTION_SYNTHESIZE,
)
from distill_core.pipeline.stages.learn import LEARN
from distill_core.pipeline.stages.signals import SIGNALS
from distill_core.pipeline.stages.synthesize import SYNTHESIZE
from distill_core.pipeline.stages.teacher import TEACHER
from distill_core.pipeline.task_kind import by_task, only_classification

# Each stage follows the config's task kind (`data.task`): instruction data runs its own
# ingest, reference-decoder signals (the teacher stage), llm_synth's pairs (generate),
# selection, filter and sft_lora scores
# through the same runner, manifests, rejects and audit; signals (the encoder) is shared.
PIPELINE: tuple[Stage, ...] = (
    by_task(INGEST, INSTRUCTION_INGEST), SIGNALS, by_task(TEACHER, INSTRUCTION_REFERENCE),
    only_classification(CLEAN), by_task(GENERATE, INSTRUCTION_GENERATE), only_classification(LEARN),
    by_task(SYNTHESIZE, INSTRUCTION_SYNTHESIZE), by_task(FILTER, INSTRUCTION_FILTER),
    by_task(EVALUATE, INSTRUCTION_EVALUATE))
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in PIPELINE)
FUNNEL_STAGES: tuple[str, ...] = tuple(s.name for s in PIPELINE if s.funnel)


def stage_named(name: str) -> Stage:
    for stage in PIPELINE:
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r}; stages: {', '.join(STAGE_NAMES)}")


def active_stages(cfg: RunConfig, until: str | None = None) -> list[Stage]:
    """The stages this config runs, in order (optional ones only when needed), up to `until`."""
    stages = []
    for stage in PIPELINE:
        if stage.enabled(cfg):
            stages.append(stage)
        if stage.name == until:
            break
    return stages


def run_pipeline(ctx: StageContext, until: str | None = None) -> list[StageOutcome]:
    """Run (resume, restore) every active stage in order, up to and including `until`."""
    return [run_stage(stage, ctx) for stage in active_stages(ctx.cfg, until)]
