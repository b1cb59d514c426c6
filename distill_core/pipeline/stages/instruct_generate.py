"""generate, instruction data (`llm_synth`): the decoder writes new pairs from k-means prototypes.

The plan and parse are `instruct/synth.py`'s: one prompt per k-means slot of the
pool's prompt embeddings (k = the budget) and replicate, `samples_per_slot`
answers each, sampled in process with the classification generator's shard
machinery (seeded per shard and prompt; parts cached by what the model is asked
and how it samples, so a rerun after a crash samples only the missing shards).
Ray for this stage is not wired: it runs where the flow runs. Each usable pair is
embedded by the run's encoder (prompt and response, the filters' features, and
its highest prompt cosine to its slot's shots) and scored by the reference decoder
(`instruct.reference`: response loss per token with and without the prompt, IFD),
so the synthesize stage chooses without a model. One row per usable pair; every
other answer is a reject (`unparseable_generation`, `truncated`,
`echoed_instruction`, `repeated_generation`).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from distill_core.artifacts.cache_use import mark_used
from distill_core.artifacts.counts import Counts
from distill_core.artifacts.schemas import rejects_table
from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.generate.candidates import GENERATED_SCHEMA, normalised
from distill_core.generate.models import causal_lm_identity, load_causal_lm, load_tokenizer
from distill_core.generate.plan import PromptPlan
from distill_core.generate.sampling import SamplingSettings
from distill_core.generate.shards import generate_in_process, make_shards, pending_shards
from distill_core.hashing import stable_hash
from distill_core.ingest.normalize import example_id
from distill_core.instruct.device import resolve_device, set_torch_threads
from distill_core.instruct.rows import ID_LABEL, InstructionRow, instruction_id
from distill_core.instruct.synth import parse_pair, plan_pairs
from distill_core.methods import get_method
from distill_core.methods.instruction import budget_rows
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.pipeline.stages.generate import GENERATE
from distill_core.pipeline.stages.signals import encoder_resources
from distill_core.pipeline.static_model import signals_static_dir
from distill_core.seeds import derive_seed
from distill_core.signals.embeddings import matrix, require_aligned
from distill_core.signals.readout import embed_texts

PAIR_SCHEMA = pa.schema(list(GENERATED_SCHEMA) + [
    ("prompt_embedding", pa.list_(pa.float32())), ("shot_similarity", pa.float64()),
    ("conditioned_loss", pa.float64()), ("direct_loss", pa.float64()), ("ifd", pa.float64())])


def _settings(cfg: RunConfig) -> dict[str, Any]:
    ref = cfg.instruct.reference
    return {"method": cfg.synthesize.method, "budget": cfg.synthesize.budget,
            "seeds": cfg.run.seeds, **cfg.generate.model_dump(mode="json"),
            "options": cfg.synthesize.options().model_dump(mode="json", exclude={"per_answer"}),
            "model_identity": causal_lm_identity(cfg.generate.model),
            "reference": {"model": causal_lm_identity(ref.model), "max_length": ref.max_length}}


def _answers(ctx: StageContext, plan: PromptPlan) -> tuple[pa.Table, dict[str, Any], Any]:
    """Every sample of every prompt (cached parts), its timings, and the decoder if loaded."""
    cfg, g = ctx.cfg, ctx.cfg.generate
    shards = make_shards(plan.prompt_ids, plan.prompts, plan.samples, g.shard_size)
    settings = SamplingSettings(max_new_tokens=g.max_new_tokens, temperature=g.temperature,
                                top_p=g.top_p, batch_size=g.batch_size)
    run_seed = derive_seed(*cfg.run.seeds)
    key = stable_hash({"task": "instruction", "model": causal_lm_identity(g.model),
                       "dtype": g.dtype, "settings": asdict(settings), "run_seed": run_seed,
                       "shards": [asdict(s) for s in shards]})
    parts = str(ctx.store.cache_root / "generate_parts" / key[:16])
    mark_used(Path(parts))  # shards generated before are reused
    lm = None
    clock = time.perf_counter()
    if pending_shards(parts, shards):
        ctx.report(0, len(shards), f"loading {g.model}")
        lm = load_causal_lm(g.model, g.dtype, resolve_device(g.device), g.trust_remote_code)
    answers = generate_in_process(shards, lm, run_seed, settings, parts,
                                  lambda done, total: ctx.report(done, total, "sampling"))
    seconds = time.perf_counter() - clock
    tokens = int(sum(answers.column("new_tokens").to_pylist()))
    return answers, {"model": g.model, "backend": "in process", "workers": {"local": len(shards)},
                     "sampling_s": round(seconds, 2),
                     "tokens_per_second": round(tokens / max(seconds, 1e-9), 2),
                     "run_seed": run_seed, "parts": parts, "shards": len(shards),
                     "new_tokens": tokens}, lm


def parsed_rows(answers: pa.Table, plan: PromptPlan, max_new_tokens: int
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per usable pair, one reject per other answer); a pair a replicate already
    wrote is `repeated_generation` (ids are unique per replicate)."""
    rows, rejects, seen = [], [], set()
    prompts = dict(zip(plan.prompt_ids, plan.prompts, strict=True))
    for answer in answers.to_pylist():
        info = plan.info[answer["prompt_id"]]
        where = f"{answer['prompt_id']} sample {answer['sample']}"
        pair = parse_pair(answer["text"], answer["new_tokens"] >= max_new_tokens)
        eid = (instruction_id(pair.prompt, pair.response) if pair.reason is None
               else example_id(f"{where}\x1f{answer['text']}", ID_LABEL))
        reason = pair.reason or ("repeated_generation" if (info.replicate, eid) in seen
                                 else None)
        if reason is not None:
            rejects.append({"example_id": eid, "replicate": info.replicate,
                            "split": "generated", "field": "text", "reason": reason,
                            "detail": f"{where}: {pair.detail}" if pair.detail else where,
                            "raw": answer["text"]})
            continue
        seen.add((info.replicate, eid))
        rows.append({"example_id": eid, "replicate": info.replicate, "label": ID_LABEL,
                     "label_id": 0, "text": pair.prompt, "text_pair": pair.response,
                     "parent_ids": info.parent_ids, "method": "llm_synth",
                     "prompt_id": answer["prompt_id"], "slot": info.slot,
                     "sample": answer["sample"], "seed": answer["seed"],
                     "shard": answer["shard"], "worker": answer["worker"],
                     "new_tokens": answer["new_tokens"], "prompt": prompts[answer["prompt_id"]],
                     "answer": answer["text"], "centroid": info.centroid})
    return rows, rejects


def _body(ctx: StageContext) -> StageOutput:
    from distill_core.instruct.signals import difficulty

    cfg, store, g, ref = ctx.cfg, ctx.store, ctx.cfg.generate, ctx.cfg.instruct.reference
    set_torch_threads(cfg.compute.torch_threads)
    corpus, embeddings = store.read("ingest"), store.read("signals")
    require_aligned(corpus, embeddings)
    positions = np.flatnonzero(np.asarray(corpus.column("split").to_pylist()) == "train")
    pool = corpus.take(pa.array(positions))
    prompt_x = normalised(matrix(embeddings, "embedding")[positions])
    ids = pool.column("example_id").to_pylist()
    options = cfg.synthesize.options()
    plan = plan_pairs(pool.column("text").to_pylist(), pool.column("text_pair").to_pylist(),
                      ids, prompt_x, budget_rows(cfg, len(ids)), options.shots, cfg.run.seeds,
                      options.samples_per_slot, load_tokenizer(g.model, g.trust_remote_code))
    answers, extra, lm = _answers(ctx, plan)
    rows, rejects = parsed_rows(answers, plan, g.max_new_tokens)
    n = len(rows)
    texts = [r["text"] for r in rows] + [r["text_pair"] for r in rows]
    vectors = (embed_texts(ctx.executor, cfg.signals, texts, encoder_resources(cfg.compute),
                           None, signals_static_dir(cfg, ctx.store, ctx.executor,
                                              encoder_resources(cfg.compute)))[0]
               if n else np.zeros((0, prompt_x.shape[1]), np.float32))
    u, v = normalised(vectors[:n]), normalised(vectors[n:])
    position = {e: i for i, e in enumerate(ids)}
    shot_similarity = [float(np.max(prompt_x[[position[p] for p in r["parent_ids"]]] @ u[i]))
                       for i, r in enumerate(rows)]
    if n and (lm is None or ref.model != g.model or g.dtype != "float32"):
        ctx.report(0, n, f"loading {ref.model}")
        lm = load_causal_lm(ref.model, device=resolve_device(ref.device))
    clock = time.perf_counter()
    scored = difficulty(lm.model, lm.tokenizer, [InstructionRow(r["example_id"], r["text"],
                                                                r["text_pair"]) for r in rows],
                        lm.device, ref.max_length, ref.batch_size) if n else None
    table = pa.Table.from_pylist([{
        **row, "embedding": np.concatenate([u[i], v[i], np.abs(u[i] - v[i]), u[i] * v[i]]),
        "teacher_prob": None, "prompt_embedding": u[i], "shot_similarity": shot_similarity[i],
        "conditioned_loss": float(scored.conditioned[i]), "direct_loss": float(scored.direct[i]),
        "ifd": float(scored.ifd[i])} for i, row in enumerate(rows)], schema=PAIR_SCHEMA)
    extra["scoring_s"] = round(time.perf_counter() - clock, 2)
    extra["reference"] = ref.model
    counts = Counts.of(answers.num_rows, n, [r["reason"] for r in rejects],
                       answers=answers.num_rows, prompts=len(plan.prompts),
                       shards=extra.pop("shards"), new_tokens=extra.pop("new_tokens"))
    ctx.report(1, 1, f"{n} usable pairs of {answers.num_rows} answers")
    return StageOutput(table, counts, rejects=rejects_table(rejects), extra=extra,
                       seeds=cfg.run.seeds)


def _report(store: RunStore) -> list[str]:
    lines = GENERATE.report(store) if GENERATE.report is not None else []
    generate = store.manifest("generate") or {}
    if lines and "scoring_s" in generate:
        lines.append(f"- usable pairs scored by the reference decoder `{generate['reference']}`"
                     f" in {generate['scoring_s']} s")
    return lines


INSTRUCTION_GENERATE = Stage(
    name="generate", version=2,
    writes="one row per usable generated pair: text (prompt), text_pair (response), "
           "parent_ids (the slot's shots), prompt, answer, seed, shard, embedding, "
           "prompt_embedding, shot_similarity, conditioned_loss, direct_loss, ifd (+ rejects: "
           "unparseable_generation, truncated, echoed_instruction, repeated_generation)",
    reads=lambda cfg: ("ingest", "signals"), settings=_settings, body=_body,
    enabled=lambda cfg: get_method(cfg.synthesize.method).generative, retries=2,
    report=_report)
