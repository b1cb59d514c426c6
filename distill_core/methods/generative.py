"""The generative family: a decoder LM writes candidates (generate stage), then the budget is
chosen among them (synthesize stage). `llm_synth` prompts an instruct model with each class's
k-means prototypes; `dilm` first fine-tunes the decoder class-conditionally.

Both share the generate body: prompts cut into shards, sampled by the executor's
workers (parts cached by what determines them), every answer line parsed into a
candidate or a reject with its reason, each candidate embedded by the run's
encoder and read by its teacher. The synthesize stage ranks each class's
choice beyond the budget (`synthesize.oversample`): after the method's picks
come its runners-up (`with_reserve`), the filter stage's reserve.
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
from distill_core.artifacts.sealed import seal_problem
from distill_core.config import ComputeSection
from distill_core.generate.actor import GenerationJob, actor_device, generate_shards
from distill_core.generate.candidates import (
    PARSED_SCHEMA,
    AnswerParser,
    ClassChooser,
    ClassPool,
    answer_lines,
    choose_generated,
    cluster_chooser,
    list_answer_parser,
    nearest_parents,
    normalised,
    sample_parser,
    slot_chooser,
)
from distill_core.generate.dilm import (
    DecoderSource,
    GeneratorTraining,
    train_generator,
    training_summary,
)
from distill_core.generate.models import causal_lm_identity, load_tokenizer
from distill_core.generate.plan import PromptPlan, plan_dilm, plan_llm_synth
from distill_core.generate.sampling import SamplingSettings
from distill_core.generate.shards import make_shards
from distill_core.hashing import stable_hash
from distill_core.methods.registry import Method
from distill_core.pipeline.executor import Resources
from distill_core.pipeline.inputs import (
    label_names,
    selection_pool,
    teacher_probabilities,
    teacher_view,
)
from distill_core.pipeline.runner import upstream_fingerprints
from distill_core.pipeline.stage import StageContext, StageOutput
from distill_core.pipeline.stages.signals import encoder_resources
from distill_core.pipeline.static_model import signals_static_dir
from distill_core.seeds import derive_seed
from distill_core.signals.readout import embed_texts
from distill_core.synthesize.stage import CandidateSet


def generator_resources(compute: ComputeSection) -> Resources:
    """Each decoder worker (and the generator's training task): CPUs and GPUs from `compute`."""
    return Resources(cpus=compute.cpus_per_actor, gpus=compute.generate_gpus_per_actor,
                     workers=compute.generate_actors)


# A candidate the method passed over only because another one won its slot or cluster: a
# usable runner-up (unlike teacher_inconsistent or near_duplicate_generation).
RUNNER_UP_REASONS = frozenset({"not_best_of_n", "not_selected"})


def with_reserve(choose: ClassChooser, reserve: int) -> ClassChooser:
    """The method's picks in its order, then up to `reserve` runners-up: round by round over
    the picks in rank order, the runner-up most similar (cosine) to each pick, so a pick the
    filter drops is refilled by the candidate closest to it; score = that similarity."""
    if reserve <= 0:
        return choose

    def ranked(pool: ClassPool) -> tuple[list[int], list[float], dict[int, str]]:
        chosen, scores, reasons = choose(pool)
        spare = sorted(i for i, reason in reasons.items() if reason in RUNNER_UP_REASONS)
        if not chosen or not spare:
            return chosen, scores, reasons
        similarity = pool.vectors[spare] @ pool.vectors[list(chosen)].T
        left, extra, extra_scores = list(range(len(spare))), [], []
        while left and len(extra) < reserve:
            for column in range(len(chosen)):
                if not left or len(extra) >= reserve:
                    break
                best = max(left, key=lambda k: (similarity[k, column], -k))
                left.remove(best)
                extra.append(spare[best])
                extra_scores.append(float(similarity[best, column]))
        return (list(chosen) + extra, list(scores) + extra_scores,
                {i: r for i, r in reasons.items() if i not in set(extra)})

    return ranked


def generate_upstream(cfg) -> tuple[str, ...]:
    return ("ingest", "signals", "teacher") + (("clean",) if cfg.filter.corpus else ())


class GenerativeMethod:
    """What llm_synth and dilm share; subclasses say how to prompt, parse and choose."""

    multi_line = False  # an answer holds several examples

    def prepare(self, ctx: StageContext, train: pa.Table, names: list[str]
                ) -> tuple[str, str, dict[str, Any]]:
        """(model folder or name to sample, its identity for cache keys, manifest notes)."""
        return ctx.cfg.generate.model, causal_lm_identity(ctx.cfg.generate.model), {}

    def plan(self, ctx: StageContext, train: pa.Table, train_x: np.ndarray,
             names: list[str]) -> PromptPlan:
        raise NotImplementedError

    def parser(self, ctx: StageContext) -> AnswerParser:
        raise NotImplementedError

    def lineage(self, parsed: pa.Table, vectors: np.ndarray, train: pa.Table,
                train_x: np.ndarray) -> pa.Table:
        """Rows' `parent_ids` where the prompt does not give them (default: unchanged)."""
        return parsed

    def chooser(self, ctx: StageContext, train: pa.Table, train_x: np.ndarray) -> ClassChooser:
        raise NotImplementedError

    # -- the generate stage ----------------------------------------------------------------

    def generate(self, ctx: StageContext, method: Method) -> StageOutput:
        cfg, store, g = ctx.cfg, ctx.store, ctx.cfg.generate
        train, train_x = selection_pool(cfg, store)
        names = label_names(store)
        model_path, model_key, extra = self.prepare(ctx, train, names)
        plan = self.plan(ctx, train, train_x, names)
        shards = make_shards(plan.prompt_ids, plan.prompts, plan.samples, g.shard_size)
        ctx.report(0, len(shards), f"{len(plan.prompts)} prompts")
        settings = SamplingSettings(max_new_tokens=g.max_new_tokens, temperature=g.temperature,
                                    top_p=g.top_p, batch_size=g.batch_size)
        run_seed = derive_seed(*cfg.run.seeds)
        # Parts are cached by what the model is asked and how it samples: a changed parse or
        # choice reuses them, and a rerun after a crash generates only the missing shards.
        parts_key = stable_hash({"model": model_key, "dtype": g.dtype,
                                 "settings": asdict(settings), "run_seed": run_seed,
                                 "shards": [asdict(s) for s in shards]})
        parts = str(store.cache_root / "generate_parts" / parts_key[:16])
        mark_used(Path(parts))  # shards generated before are reused
        sampled_at = time.perf_counter()
        job = GenerationJob(shards, model_path, g, settings, run_seed, parts)
        answers, workers = generate_shards(ctx.executor, job, ctx.resources,
                                           lambda done, total: ctx.report(done, total))
        sampling_s = time.perf_counter() - sampled_at
        rows, rejects = answer_lines(answers, plan, method.name, names, g, self.parser(ctx),
                                     self.multi_line)
        parsed = pa.Table.from_pylist(rows, schema=PARSED_SCHEMA)
        texts = parsed.column("text").to_pylist()
        encoders = encoder_resources(cfg.compute)
        vectors = (embed_texts(ctx.executor, cfg.signals, texts, encoders, None,
                               signals_static_dir(cfg, store, ctx.executor, encoders))[0] if texts
                   else np.zeros((0, train_x.shape[1]), np.float32))
        probs = (teacher_probabilities(cfg, store, ctx.executor, encoders, texts, vectors)
                 if texts else np.zeros((0, len(names))))
        if texts:
            parsed = self.lineage(parsed, vectors, train, train_x)
        table = parsed.append_column("embedding",
                                     pa.array(list(vectors), pa.list_(pa.float32())))
        table = table.append_column("teacher_prob", pa.array(list(probs.astype(np.float32)),
                                                             pa.list_(pa.float32())))
        tokens = int(sum(answers.column("new_tokens").to_pylist()))
        counts = Counts.of(len(rows) + len(rejects), table.num_rows,
                           [r["reason"] for r in rejects], answers=answers.num_rows,
                           prompts=len(plan.prompts), shards=len(shards), new_tokens=tokens)
        extra |= {"model": g.model, "backend": ctx.executor.name, "workers": workers,
                  "sampling_s": round(sampling_s, 2),
                  "tokens_per_second": round(tokens / max(sampling_s, 1e-9), 2),
                  "run_seed": run_seed, "parts": parts}
        ctx.report(len(shards), len(shards), f"{table.num_rows} usable lines")
        return StageOutput(table, counts, rejects=rejects_table(rejects), extra=extra,
                           seeds=cfg.run.seeds)

    # -- the synthesize stage --------------------------------------------------------------

    def synthesize(self, ctx: StageContext, method: Method) -> tuple[CandidateSet, dict[str, Any]]:
        cfg = ctx.cfg
        train, train_x = selection_pool(cfg, ctx.store)
        per_class = cfg.synthesize.per_class
        chooser = with_reserve(self.chooser(ctx, train, train_x),
                               per_class * (cfg.synthesize.oversample - 1))
        result = choose_generated(ctx.store.read("generate"), method.name, per_class,
                                  cfg.run.seeds, ctx.store.run_id, chooser,
                                  sorted(set(train.column("label_id").to_pylist())))
        return result, {"pool": "generate", "workers": None}


class LlmSynth(GenerativeMethod):
    """Few-shot prompts of each class's k-means prototypes; best of n per slot."""

    multi_line = True

    def plan(self, ctx: StageContext, train: pa.Table, train_x: np.ndarray,
             names: list[str]) -> PromptPlan:
        g = ctx.cfg.generate
        return plan_llm_synth(train, train_x, names, ctx.cfg.synthesize.per_class,
                              ctx.cfg.run.seeds, ctx.cfg.synthesize.options(),
                              load_tokenizer(g.model, g.trust_remote_code))

    def parser(self, ctx: StageContext) -> AnswerParser:
        return list_answer_parser(ctx.cfg.generate)

    def chooser(self, ctx: StageContext, train: pa.Table, train_x: np.ndarray) -> ClassChooser:
        return slot_chooser(ctx.cfg.generate)


class Dilm(GenerativeMethod):
    """The decoder fine-tuned on `label: <name>\\ntext: <sentence>`, then sampled per class."""

    def prepare(self, ctx: StageContext, train: pa.Table, names: list[str]
                ) -> tuple[str, str, dict[str, Any]]:
        cfg, g, o = ctx.cfg, ctx.cfg.generate, ctx.cfg.synthesize.options()
        identity = causal_lm_identity(g.model)
        training = GeneratorTraining(
            steps=o.train_steps, batch_size=o.train_batch_size, lr=o.train_lr,
            max_length=o.train_max_length, lora_r=o.lora_r, lora_alpha=o.lora_alpha,
            seed=cfg.run.seeds[0])
        # In the runs folder's cache, keyed by what the generator learns from: another run that
        # changes only the parse or the choice reuses it.
        data = upstream_fingerprints(ctx.store, tuple(s for s in generate_upstream(cfg)
                                                      if s != "teacher"))
        key = stable_hash({"model": identity, "dtype": g.dtype, "training": asdict(training),
                           "data": data})
        folder = ctx.store.cache_root / "generator" / key[:16]
        mark_used(folder)
        dropped = None
        if (problem := seal_problem(folder)) is not None:  # none yet, or not what was written
            dropped = problem if folder.exists() else None  # trained again, and said so
            ctx.report(0, o.train_steps, "fine-tuning the generator")
            resources = ctx.resources
            decoder = DecoderSource(g.model, g.dtype, actor_device(g, resources.gpus),
                                    g.trust_remote_code)
            ctx.executor.run_task(
                train_generator, resources, decoder, train.column("text").to_pylist(),
                [names[i] for i in train.column("label_id").to_pylist()], str(folder), training,
                progress=lambda step, total, loss: ctx.report(step, total, f"loss {loss:.3f}"))
        summary = {"generator": training_summary(folder)}
        if dropped is not None:
            summary["generator_cache_dropped"] = dropped
        return str(folder), key, summary

    def plan(self, ctx: StageContext, train: pa.Table, train_x: np.ndarray,
             names: list[str]) -> PromptPlan:
        labels = sorted(set(train.column("label_id").to_pylist()))
        return plan_dilm(labels, names, ctx.cfg.run.seeds, ctx.cfg.synthesize.options())

    def parser(self, ctx: StageContext) -> AnswerParser:
        return sample_parser(ctx.cfg.generate)

    def lineage(self, parsed: pa.Table, vectors: np.ndarray, train: pa.Table,
                train_x: np.ndarray) -> pa.Table:
        """The generator learnt from the whole split: the 3 nearest real rows of the class are
        the lineage's best account of where a sentence came from."""
        parents = nearest_parents(normalised(vectors), parsed.column("label_id").to_numpy(),
                                  normalised(train_x), train.column("label_id").to_numpy(),
                                  train.column("example_id").to_pylist())
        return parsed.set_column(parsed.schema.get_field_index("parent_ids"), "parent_ids",
                                 pa.array(parents, pa.list_(pa.string())))

    def chooser(self, ctx: StageContext, train: pa.Table, train_x: np.ndarray) -> ClassChooser:
        options = ctx.cfg.synthesize.options()
        gradients = class_gradients(ctx, train, train_x) if options.grad_rank else None
        return cluster_chooser(ctx.cfg.generate, options, ctx.cfg.synthesize.per_class,
                               gradients)


def class_gradients(ctx: StageContext, train: pa.Table, train_x: np.ndarray
                    ) -> dict[int, np.ndarray]:
    """Each class's mean classifier-layer gradient under the teacher: mean (p - y) x^T."""
    view = teacher_view(ctx.store, train.column("example_id").to_pylist(), 1.0)
    x = normalised(train_x)
    labels = train.column("label_id").to_numpy()
    return {int(c): view.grad_logits[labels == c].T @ x[labels == c] / max((labels == c).sum(), 1)
            for c in np.unique(labels)}


LLM_SYNTH = LlmSynth()
DILM = Dilm()
