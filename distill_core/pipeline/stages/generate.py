"""generate: a decoder LM writes candidate rows (generative methods only)."""

from __future__ import annotations

from typing import Any

from distill_core.config import RunConfig
from distill_core.generate.models import causal_lm_identity
from distill_core.methods import get_method
from distill_core.pipeline.stage import Stage, StageContext, StageOutput


def _method_needs_generation(cfg: RunConfig) -> bool:
    return get_method(cfg.synthesize.method).generative


def _reads(cfg: RunConfig) -> tuple[str, ...]:
    from distill_core.methods.generative import generate_upstream

    return generate_upstream(cfg)


def _settings(cfg: RunConfig) -> dict[str, Any]:
    return {"method": cfg.synthesize.method, "per_class": cfg.synthesize.per_class,
            "seeds": cfg.run.seeds, **cfg.generate.model_dump(mode="json"),
            "options": cfg.synthesize.options().model_dump(mode="json"),
            "model_identity": causal_lm_identity(cfg.generate.model)}


def _body(ctx: StageContext) -> StageOutput:
    method = get_method(ctx.cfg.synthesize.method)
    return method.implementation().generate(ctx, method)


def _resources(compute):
    from distill_core.methods.generative import generator_resources

    return generator_resources(compute)


GENERATE = Stage(
    name="generate", version=3,
    writes="one row per usable generated line: text, prompt, answer, seed, shard, worker, "
           "embedding, teacher_prob (+ rejects with parse reasons)",
    reads=_reads, settings=_settings, body=_body, enabled=_method_needs_generation,
    resources=_resources, retries=2)
