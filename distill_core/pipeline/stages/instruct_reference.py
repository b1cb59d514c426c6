"""teacher, instruction data: the reference decoder's signals of the pool, as one Parquet artifact.

Runs only when the method declares the need (`ifd`, `deita`, `less`) and computes
only what it reads: the response loss with and without the prompt and their
ratio, IFD (`ifd`, `deita`), or LESS's projected LoRA gradients after a seeded
warm-up on a share of the pool (`less`), all from `instruct.signals`. One row per
corpus row, so the hand-off from ingest balances; the evaluation split is never
scored (its signal columns are null: no method reads them). Cached across runs by
its settings, so another method or budget over the same pool reuses it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.store import RunStore
from distill_core.config import ComputeSection, RunConfig
from distill_core.generate.models import causal_lm_identity
from distill_core.instruct.device import set_torch_threads
from distill_core.instruct.rows import InstructionRow
from distill_core.methods import get_method
from distill_core.pipeline.executor import Resources
from distill_core.pipeline.stage import Stage, StageContext, StageOutput

# Rows of like length that share one backward pass for their per-row LoRA gradients
# (`instruct.signals.gradient_features`); in the settings, since it changes the last bits.
GRADIENT_ROWS = 8


def scores_the_pool(cfg: RunConfig) -> bool:
    """The method ranks the pool by the reference decoder's signals (`llm_synth` scores only
    its generated pairs, in the generate stage)."""
    method = get_method(cfg.synthesize.method)
    return "teacher" in method.needs and not method.generative


def reference_signals(cfg: RunConfig) -> list[str]:
    """What the method reads of the reference decoder: `difficulty` or `gradients`."""
    return ["gradients"] if cfg.synthesize.method == "less" else ["difficulty"]


def _settings(cfg: RunConfig) -> dict[str, Any]:
    ref = cfg.instruct.reference
    settings: dict[str, Any] = {"model": causal_lm_identity(ref.model),
                                "max_length": ref.max_length,
                                "signals": reference_signals(cfg)}
    if "gradients" in settings["signals"]:
        settings.update(grad_dim=ref.grad_dim, projection=ref.projection, seed=ref.seed,
                        gradient_rows=GRADIENT_ROWS,
                        warm_fraction=ref.warm_fraction, warm_steps=ref.warm_steps,
                        lora=cfg.instruct.sft.model_dump(
                            mode="json", include={"lora_r", "lora_alpha", "lora_dropout",
                                                  "target_modules", "lr", "batch_size",
                                                  "weight_decay", "warmup_ratio"}))
    return settings


def pool_rows(corpus: pa.Table) -> tuple[np.ndarray, list[InstructionRow]]:
    """The training rows' corpus positions and rows (prompt = text, response = text_pair)."""
    data = corpus.select(["example_id", "split", "text", "text_pair"]).to_pylist()
    positions = np.asarray([i for i, r in enumerate(data) if r["split"] == "train"], np.int64)
    return positions, [InstructionRow(data[i]["example_id"], data[i]["text"],
                                      data[i]["text_pair"]) for i in positions]


def _gradients(cfg: RunConfig, lm: Any, rows: list[InstructionRow]) -> np.ndarray:
    from distill_core.instruct.sft import add_lora
    from distill_core.instruct.signals import gradient_features, warm_lora

    ref = cfg.instruct.reference
    options = cfg.instruct.sft.model_copy(update={"steps": ref.warm_steps,
                                                  "max_length": ref.max_length})
    model = add_lora(lm.model, options, ref.seed)
    warm = min(len(rows), max(8, round(ref.warm_fraction * len(rows))))
    picks = np.random.default_rng(ref.seed).permutation(len(rows))[:warm]
    warm_lora(model, lm.tokenizer, [rows[int(i)] for i in picks], lm.device, options, ref.seed)
    return gradient_features(model, lm.tokenizer, rows, lm.device, k=ref.grad_dim,
                             seed=ref.seed, kind=ref.projection, max_length=ref.max_length,
                             together=GRADIENT_ROWS)


def score_pool(cfg: RunConfig, rows: list[InstructionRow]) -> dict[str, Any]:
    """The reference decoder's signals of `rows` (runs wherever the executor puts it: in
    process, or as one Ray task on a worker with the configured GPUs)."""
    from distill_core.generate.models import load_causal_lm
    from distill_core.instruct.device import resolve_device
    from distill_core.instruct.signals import difficulty

    ref = cfg.instruct.reference
    set_torch_threads(cfg.compute.torch_threads)
    lm = load_causal_lm(ref.model, device=resolve_device(ref.device))
    clock = time.perf_counter()
    out: dict[str, Any] = {"device": lm.device}
    if "difficulty" in reference_signals(cfg):
        scored = difficulty(lm.model, lm.tokenizer, rows, lm.device, ref.max_length,
                            ref.batch_size)
        out.update(conditioned_loss=scored.conditioned, direct_loss=scored.direct,
                   ifd=scored.ifd)
    else:
        out["grad_features"] = _gradients(cfg, lm, rows)
    out["seconds"] = time.perf_counter() - clock
    return out


def _body(ctx: StageContext) -> StageOutput:
    cfg, ref = ctx.cfg, ctx.cfg.instruct.reference
    corpus = ctx.store.read("ingest")
    positions, rows = pool_rows(corpus)
    ctx.report(0, len(rows), f"loading {ref.model} ({ctx.executor.name})")
    scored = ctx.executor.run_task(score_pool, ctx.resources, cfg, rows)
    n = corpus.num_rows
    columns: dict[str, Any] = {"example_id": corpus.column("example_id"),
                               "split": corpus.column("split")}
    if "grad_features" in scored:
        lists: list[list[float] | None] = [None] * n
        for at, vector in zip(positions.tolist(), scored["grad_features"], strict=True):
            lists[at] = vector.tolist()
        columns["grad_features"] = pa.array(lists, pa.list_(pa.float32()))
    else:
        for name in ("conditioned_loss", "direct_loss", "ifd"):
            full = np.full(n, np.nan)
            full[positions] = scored[name]
            columns[name] = pa.array(full, pa.float64(), mask=np.isnan(full))
    seconds = scored["seconds"]
    ctx.report(len(rows), len(rows), f"{seconds:.0f}s")
    return StageOutput(pa.table(columns), Counts.one_to_one(n, rows_scored=len(rows)),
                       extra={"reference": ref.model, "signals": reference_signals(cfg),
                              "rows_scored": len(rows), "seconds": round(seconds, 2),
                              "seconds_per_row": round(seconds / max(len(rows), 1), 4),
                              "device": scored["device"], "backend": ctx.executor.name})


def _resources(compute: ComputeSection) -> Resources:
    """The reference decoder runs as one task with the learners' CPUs and GPUs."""
    return Resources(cpus=compute.cpus_per_actor, gpus=compute.gpus_per_actor)


def _report(store: RunStore) -> list[str]:
    manifest = store.manifest("teacher") or {}
    if "rows_scored" not in manifest:
        return []
    return [f"- reference decoder `{manifest['reference']}`: {', '.join(manifest['signals'])} "
            f"of {manifest['rows_scored']} pool rows in {manifest['seconds']} s "
            f"({manifest['seconds_per_row']} s/row, {manifest['device']}, "
            f"{manifest.get('backend', 'local')} backend)"
            + (" (restored from the cache)" if manifest.get("cache", {}).get("hit") else "")]


INSTRUCTION_REFERENCE = Stage(
    name="teacher", version=1,
    writes="per corpus row: conditioned_loss, direct_loss, ifd (ifd, deita) or grad_features "
           "(less), from the reference decoder; null on the evaluation split",
    reads=lambda cfg: ("ingest",), settings=_settings, body=_body,
    enabled=scores_the_pool, resources=_resources,
    cached=True, retries=2, report=_report)
