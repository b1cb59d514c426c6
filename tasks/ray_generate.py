"""Generation on Ray: a Ray Data actor pool over prompt shards, the model loaded once per actor.

Each actor generates a whole shard and writes it as its own Parquet part before
returning a one-row summary, so a worker killed mid-shard leaves nothing
behind; Ray Data restarts the actor and retries the shard, which regenerates
the same rows (seeds derive from the run seed and the shard). `num_gpus` per
actor comes from the config (0 on a CPU machine).
"""

from __future__ import annotations

import os

import numpy as np

from distill_core.config import ComputeSection, FaultsSection, GenerateSection
from distill_core.faults import claim_once
from distill_core.generate.dilm import GeneratorTraining, TrainedGenerator, train_generator
from distill_core.generate.sampling import SamplingSettings
from distill_core.generate.shards import (
    PromptShard,
    generate_shard,
    pending_shards,
    read_parts,
    write_part,
)
from tasks.ray_backend import ensure_ray


class GenerateActor:
    def __init__(self, model: str, dtype: str, device: str | None, trust_remote_code: bool,
                 run_seed: int, settings: dict, out_dir: str, torch_threads: int | None,
                 fail_after_shards: int | None = None, marker_dir: str | None = None) -> None:
        import ray
        import torch

        from distill_core.generate.models import load_causal_lm

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.lm = load_causal_lm(model, dtype, device, trust_remote_code)
        self.run_seed, self.out_dir = run_seed, out_dir
        self.settings = SamplingSettings(**settings)
        self.where = f"{ray.get_runtime_context().get_node_id()[:12]}:{os.getpid()}"
        self.fail_after, self.marker_dir, self.done = fail_after_shards, marker_dir, 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        shards, rows, tokens = [], [], []
        for i in range(len(batch["shard"])):
            if (self.fail_after is not None and self.done >= self.fail_after
                    and claim_once(self.marker_dir or ".", "generator-killed")):
                os._exit(1)  # a worker dying in the middle of a shard (fault drill)
            shard = PromptShard(int(batch["shard"][i]), tuple(batch["prompt_ids"][i]),
                                tuple(batch["prompts"][i]), int(batch["samples"][i]))
            table = generate_shard(self.lm, shard, self.run_seed, self.settings, self.where)
            write_part(self.out_dir, shard.shard, table)
            self.done += 1
            shards.append(shard.shard)
            rows.append(table.num_rows)
            tokens.append(int(sum(table.column("new_tokens").to_pylist())))
        return {"shard": np.asarray(shards), "rows": np.asarray(rows),
                "tokens": np.asarray(tokens), "worker": np.asarray([self.where] * len(shards))}


def _actor_device(generate: GenerateSection, gpus: float) -> str | None:
    """Several GPUs per actor: shard the model over them; else the configured device."""
    return "auto" if gpus > 1 else generate.device


def ray_generate(shards: list[PromptShard], model: str, generate: GenerateSection, run_seed: int,
                 settings: SamplingSettings, out_dir: str, compute: ComputeSection,
                 faults: FaultsSection | None = None) -> tuple:
    """Generate every pending shard on the pool; returns all parts and the shards per worker."""
    import ray

    ensure_ray(compute.ray_address)
    faults = faults or FaultsSection()
    todo = pending_shards(out_dir, shards)
    workers: dict[str, int] = {}
    if todo:
        context = ray.data.DataContext.get_current()
        context.wait_for_min_actors_s = max(context.wait_for_min_actors_s, 600)
        gpus = compute.generate_gpus_per_actor
        items = [{"shard": s.shard, "prompt_ids": list(s.prompt_ids), "prompts": list(s.prompts),
                  "samples": s.samples} for s in todo]
        summary = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            GenerateActor, batch_size=1, batch_format="numpy",
            fn_constructor_kwargs={"model": model, "dtype": generate.dtype,
                                   "device": _actor_device(generate, gpus),
                                   "trust_remote_code": generate.trust_remote_code,
                                   "run_seed": run_seed, "settings": vars(settings),
                                   "out_dir": out_dir, "torch_threads": compute.torch_threads,
                                   "fail_after_shards": faults.kill_generator_after_shards,
                                   "marker_dir": faults.marker_dir},
            compute=ray.data.ActorPoolStrategy(size=min(compute.generate_actors, len(items))),
            num_cpus=compute.cpus_per_actor, num_gpus=gpus or None)
        for row in summary.iter_rows():
            workers[str(row["worker"])] = workers.get(str(row["worker"]), 0) + 1
    return read_parts(out_dir, shards), workers


def ray_train_generator(model: str, texts: list[str], labels: list[str], out_dir: str,
                        settings: GeneratorTraining, generate: GenerateSection,
                        compute: ComputeSection) -> TrainedGenerator:
    """Fine-tune the dilm generator as one Ray task on a node with the configured GPUs."""
    import ray

    ensure_ray(compute.ray_address)
    gpus = compute.generate_gpus_per_actor
    remote = ray.remote(num_cpus=compute.cpus_per_actor, num_gpus=gpus or None,
                        max_retries=1)(train_generator)
    return ray.get(remote.remote(model, texts, labels, out_dir, settings, generate.dtype,
                                 _actor_device(generate, gpus), generate.trust_remote_code))
