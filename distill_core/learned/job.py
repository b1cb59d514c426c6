"""One learned distillation as a picklable job: load the learner, initialise, optimise, decode.

The pipeline's `learn` stage hands a `LearnJob` to the executor's `run_task`,
so the same function runs in process or on a Ray worker with a GPU. The job
resumes from the state file `state_path` when one is there (a killed run
continues from its last saved outer step), saves it every `save_every` steps
and once more at the end, caches expert trajectories under `experts_dir`
(keyed by what determines them) and returns plain values: the synthetic set
as a dict of CPU tensors, the outer losses, each step's wall time and the
decoded rows.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill_core.artifacts.cache_use import mark_used
from distill_core.learned import prototypes
from distill_core.learned.base import Distiller, OuterConfig, deterministic
from distill_core.learned.decode import (
    Decoded,
    decoder_regularised,
    matched_sentences,
    nearest_sentences,
    nearest_tokens,
)
from distill_core.learned.experts import ExpertConfig, expert_key, train_experts
from distill_core.learned.functional import FunctionalLearner
from distill_core.learned.inner import InnerConfig
from distill_core.learned.meta_matching import MetaMatching
from distill_core.learned.pooled_memo import keep, pooled_key, recall
from distill_core.learned.real import RealData
from distill_core.learned.synthetic import SyntheticSet
from distill_core.seeds import derive_seed

Progress = Callable[[int, int, str], None]  # (outer steps done, total, note)


@dataclass(frozen=True)
class LearnJob:
    """Everything one seed's distillation reads (shipped once to a remote worker).

    `family`: a key of `FAMILIES`; `options`: the method's options (`params()`); `model`: the
    encoder learner; `features`: the run's embeddings of the real rows (k-means init, and the
    nearest-sentence decoding when `features_match_learner`: they come from the same
    encoder); `state_path`: the resumable state; `experts_dir`: the expert cache;
    `kill_after`: fault drill, SIGKILL after that outer step once per `marker_dir`.
    """

    family: str
    options: dict[str, Any]
    model: str
    texts: list[str]
    labels: np.ndarray
    example_ids: list[str]
    features: np.ndarray
    features_match_learner: bool
    label_names: list[str]
    per_class: int
    seed: int
    state_path: str
    experts_dir: str
    decoder_model: str | None = None
    gpus: float = 0.0
    torch_threads: int | None = None
    kill_after: int | None = None
    marker_dir: str | None = None


def _device(gpus: float) -> str:
    return "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"


def load_learner(model: str, n_classes: int, pooling: str, last_layers: int | None,
                 device: str) -> tuple[FunctionalLearner, Any]:
    """The encoder learner and its tokenizer (a local folder, a known name or a hub id)."""
    from transformers import AutoModel, AutoTokenizer

    from distill_core.signals.models import resolve_model_path

    path = resolve_model_path(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path, attn_implementation="eager").to(device)
    return FunctionalLearner(encoder, n_classes, pooling, last_layers), tokenizer


def _initial_set(job: LearnJob, learner: FunctionalLearner, tokenizer: Any) -> SyntheticSet:
    o = job.options
    shape = learner.attention_shape if o["attention_labels"] else None
    meta = {"label_names": job.label_names}
    if o["init"] == "noise":
        return prototypes.from_noise(learner.word_embeddings, len(job.label_names),
                                     job.per_class, o["seq_len"], job.seed, o["lr"], shape,
                                     o["label_smoothing"], meta)
    synthetic = prototypes.from_real(
        job.features, job.labels, job.texts, job.example_ids, tokenizer, learner.word_embeddings,
        len(job.label_names), job.per_class, o["seq_len"], job.seed, o["lr"], shape,
        o["label_smoothing"], meta)
    return prototypes.match_attention(synthetic, learner)


def _family_kwargs(job: LearnJob, learner: FunctionalLearner, real: RealData
                   ) -> tuple[dict[str, Any], list[str]]:
    """The family's own arguments; for trajectory matching, the experts (cached)."""
    o = job.options
    if job.family == "distribution_matching":
        return {"perturbation": o["perturbation"], "noise_scale": o["noise_scale"]}, []
    if job.family != "trajectory_matching":
        return {}, []
    trajectories, folders = [], []
    for index in range(o["experts"]):
        config = ExpertConfig(checkpoints=o["expert_checkpoints"],
                              interval=o["expert_interval"], lr=o["expert_lr"],
                              seed=derive_seed(job.seed, 0xE4, index),
                              head_seed=derive_seed(job.seed, 0xE5, index),
                              batch_size=o["batch_size"])
        folder = Path(job.experts_dir) / expert_key(learner, real, config)[:16]
        mark_used(folder)  # trajectories trained before are read back
        trajectories.append(train_experts(learner, real, folder, config))
        folders.append(str(folder))
    return {"trajectories": trajectories, "expert_span": o["expert_span"]}, folders


def _decode(job: LearnJob, synthetic: SyntheticSet, learner: FunctionalLearner, tokenizer: Any,
            real: RealData, distiller: Distiller) -> list[Decoded]:
    o = job.options
    embeds, mask = synthetic.embeds.detach(), synthetic.mask
    if o["decode"] == "nearest_token":
        return nearest_tokens(embeds, mask, learner.word_embeddings, tokenizer)
    if o["decode"] == "decoder":
        from distill_core.generate.models import load_causal_lm

        lm = load_causal_lm(job.decoder_model or "SmolLM2-135M-Instruct",
                            device=str(learner.device))
        return decoder_regularised(embeds, mask, learner.word_embeddings, tokenizer, lm.model,
                                   lm.tokenizer, weight=o["decoder_weight"])
    if o["decode"] == "matched_sentence":  # the head's own (unnormalised) features
        raw = (distiller.real_features(real) if isinstance(distiller, MetaMatching)
               and distiller.static else
               learner.pooled(real.attention_mask.to(learner.device),
                              input_ids=real.input_ids.to(learner.device), normalize=False))
        return matched_sentences(learner.pooled(mask, inputs_embeds=embeds, normalize=False).cpu(),
                                 synthetic.labels.cpu(), synthetic.soft_labels().detach().cpu(),
                                 synthetic.lr.detach().cpu(), raw.cpu(), real.labels,
                                 real.example_ids, real.texts, shortlist=o["match_shortlist"])
    synthetic_x = learner.pooled(mask, inputs_embeds=embeds).cpu()
    real_x = (torch.from_numpy(np.asarray(job.features, dtype=np.float32))
              if job.features_match_learner
              else learner.pooled(real.attention_mask.to(learner.device),
                                  input_ids=real.input_ids.to(learner.device)).cpu())
    return nearest_sentences(synthetic_x, synthetic.labels.cpu(), real_x, real.labels,
                             real.example_ids, real.texts)


def _cpu(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in data.items()}


def run_learn_job(job: LearnJob, progress: Progress | None = None) -> dict[str, Any]:
    """Run (or resume) the distillation of one seed and decode it; plain values back."""
    from distill_core.learned import FAMILIES

    if job.torch_threads:
        torch.set_num_threads(job.torch_threads)
    o, device = job.options, _device(job.gpus)
    learner, tokenizer = load_learner(job.model, len(job.label_names), o["pooling"],
                                      o["last_layers"], device)
    real = RealData.from_texts(tokenizer, job.texts, job.labels, job.example_ids,
                               max_length=o["max_length"], batch_size=o["batch_size"],
                               seed=job.seed, device=device)
    synthetic = _initial_set(job, learner, tokenizer)
    outer = OuterConfig(seed=job.seed, lr_embeds=o["lr_embeds"], lr_labels=o["lr_labels"],
                        lr_attention=o["lr_labels"], lr_lr=o["lr_lr"],
                        init_pool=o["init_pool"], save_every=o["save_every"],
                        checkpoint=job.state_path)
    inner = InnerConfig(steps=o["inner_steps"], attention_weight=o["attention_weight"],
                        head_init=o["head_init"])
    kwargs, experts = _family_kwargs(job, learner, real)
    distiller: Distiller = FAMILIES[job.family](learner, synthetic, outer, inner, **kwargs)
    resumed_from = distiller.step if distiller.resume(job.state_path) else None
    # The pool's pretrained features, read out once for all the stage's seeds in a process
    memo = (pooled_key(job.model, o, job.texts, device)
            if isinstance(distiller, MetaMatching) and distiller.static else None)
    if memo is not None and (kept := recall(memo)) is not None:
        distiller.use_features(real, kept)
    steps, step_s = o["outer_steps"], []
    clock = [time.perf_counter()]

    def tick(step: int, loss: float) -> None:
        now = time.perf_counter()
        step_s.append(now - clock[0])
        clock[0] = now
        if progress is not None:
            progress(step, steps, f"seed {job.seed}: loss {loss:.4f}")
        if job.kill_after == step:
            from distill_core.faults import claim_once

            # as the Ray actors' drills: the marker in the working folder when none is given
            if claim_once(job.marker_dir or ".", "learn-killed"):
                os.kill(os.getpid(), signal.SIGKILL)

    with deterministic():
        distiller.fit(real, steps, tick)
    distiller.save_state(job.state_path)
    if memo is not None:
        keep(memo, distiller.real_features(real))
    result = distiller.synthetic.requires_grad_(False)
    decoded = _decode(job, result, learner, tokenizer, real, distiller)
    return {"synthetic": _cpu(result.to_dict()), "losses": list(distiller.losses),
            "step_s": step_s, "resumed_from": resumed_from, "device": device,
            "experts": experts,
            "decoded": [{"text": d.text, "score": d.score, "source_id": d.source_id}
                        for d in decoded]}
