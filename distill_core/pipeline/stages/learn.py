"""learn: synthetic embeddings optimised by a learned method's family, decoded to text (learned
methods only). The work is in `methods/learned.py` and the library in `learned/`."""

from __future__ import annotations

from statistics import fmean
from typing import Any

from distill_core.artifacts.store import RunStore
from distill_core.config import ComputeSection, RunConfig
from distill_core.generate.models import causal_lm_identity
from distill_core.methods import get_method
from distill_core.pipeline.executor import Resources
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.signals.models import model_identity
from distill_core.signals.static_encoder import base_encoder


def _is_learned(cfg: RunConfig) -> bool:
    return get_method(cfg.synthesize.method).learned


def _reads(cfg: RunConfig) -> tuple[str, ...]:
    # The teacher, when the run has one, reads the decoded rows (teacher_prob).
    from distill_core.pipeline.stages.teacher import needs_teacher

    return (("ingest", "signals") + (("teacher",) if needs_teacher(cfg) else ())
            + (("clean",) if cfg.filter.corpus else ()))


def _settings(cfg: RunConfig) -> dict[str, Any]:
    options = cfg.synthesize.options()
    model = getattr(options, "model", None) or base_encoder(cfg.signals.model)
    settings = {"method": cfg.synthesize.method, "per_class": cfg.synthesize.per_class,
                "seeds": cfg.run.seeds, "options": options.model_dump(mode="json"),
                "model_identity": model_identity(model)}
    if options.decode == "decoder":  # the causal LM that decodes: named, or generate.model
        settings["decoder_identity"] = causal_lm_identity(options.decoder_model
                                                          or cfg.generate.model)
    return settings


def _body(ctx: StageContext) -> StageOutput:
    method = get_method(ctx.cfg.synthesize.method)
    return method.implementation().learn(ctx, method)


def _resources(compute: ComputeSection) -> Resources:
    """One task per seed, on a worker with the encoders' CPUs and GPUs."""
    return Resources(cpus=compute.cpus_per_actor, gpus=compute.gpus_per_actor)


def _report(store: RunStore) -> list[str]:
    learn = store.manifest("learn")
    if learn is None:
        return []
    lines = ["## Learned distillation", "",
             f"- family: `{learn.get('family')}`; encoder: `{learn.get('model')}`; decoded by "
             f"`{learn.get('decode')}`; backend: {learn.get('backend')}"]
    for entry in learn.get("replicates") or []:
        losses = entry["losses"]
        head, tail = losses[:5], losses[-5:]
        resumed = (f", resumed from step {entry['resumed_from']}"
                   if entry.get("resumed_from") is not None else "")
        lines.append(
            f"- seed {entry['seed']}: {entry['outer_steps']} outer steps, "
            f"{entry['mean_step_s']} s per step on {entry['device']}{resumed}; outer loss "
            f"{fmean(head):.4f} → {fmean(tail):.4f} (mean of the first and last five); "
            f"learned lr {entry['lr']:.4g}")
    lines.append("- tensors (embeddings, soft and attention labels, lr): "
                 f"`{store.data_dir('learn')}`; the outer loss curve: report.html")
    return lines


LEARN = Stage(
    name="learn", version=1,
    writes="one row per synthetic example and seed: the learned tensors as fixed-size lists "
           "(embeds, mask, label_logits, attention_logits, log_lr), the decoded text with "
           "parent_ids, its embedding and teacher_prob",
    reads=_reads, settings=_settings, body=_body, enabled=_is_learned,
    resources=_resources, retries=2, report=_report)
