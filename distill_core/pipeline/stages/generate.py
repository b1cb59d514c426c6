"""generate: a decoder LM writes candidate rows (generative methods only)."""

from __future__ import annotations

from statistics import fmean
from typing import Any

from distill_core.artifacts.store import RunStore
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


def _report(store: RunStore) -> list[str]:
    generate = store.manifest("generate")
    if generate is None:
        return []
    counts = generate["counts"]
    lines = ["## Generation", "",
             f"- model: `{generate.get('model')}` ({generate['stage_config'].get('dtype')}); "
             f"backend: {generate.get('backend')}; workers: {generate.get('workers')}",
             f"- {counts['prompts']} prompts in {counts['shards']} shards, "
             f"{counts['answers']} answers, {counts['new_tokens']} new tokens in "
             f"{generate.get('sampling_s')} s ({generate.get('tokens_per_second')} tokens/s)",
             f"- lines: {counts['rows_in']}, usable {counts['rows_out']}"]
    if generate.get("generator"):
        g = generate["generator"]
        lines.append(f"- generator: {g['trainable_parameters']} trainable parameters, "
                     f"{g['settings']['steps']} steps in {g['wall_time_s']} s, loss "
                     f"{fmean(g['loss_first5']):.3f} → {fmean(g['loss_last5']):.3f} "
                     "(mean of the first and last five steps)")
    return lines


GENERATE = Stage(
    name="generate", version=4,
    writes="one row per usable generated line: text, prompt, answer, seed, shard, worker, "
           "embedding, teacher_prob (+ rejects with parse reasons)",
    reads=_reads, settings=_settings, body=_body, enabled=_method_needs_generation,
    resources=_resources, retries=2, report=_report)
