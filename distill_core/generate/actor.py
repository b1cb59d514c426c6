"""Generation through an executor: a decoder per worker, one prompt shard per batch.

Each worker loads the model once and writes every shard it generates as its
own Parquet part before returning a one-row summary, so a worker killed
mid-shard leaves nothing behind and the executor's retry regenerates the same
rows (seeds derive from the run seed and the shard). Shards already on disk
are not generated again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from distill_core.config import GenerateSection
from distill_core.generate.sampling import SamplingSettings
from distill_core.generate.shards import (
    PromptShard,
    generate_shard,
    pending_shards,
    read_parts,
    write_part,
)
from distill_core.pipeline.executor import ActorSpec, Executor, Resources


class GenerateActor:
    progress: Callable[[int, int], None] | None = None
    where: str = "local"

    def __init__(self, model: str, dtype: str, device: str | None, trust_remote_code: bool,
                 run_seed: int, settings: dict, out_dir: str) -> None:
        from distill_core.generate.models import load_causal_lm

        self.lm = load_causal_lm(model, dtype, device, trust_remote_code)
        self.run_seed, self.out_dir = run_seed, out_dir
        self.settings = SamplingSettings(**settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows, tokens = [], []
        total = len(batch["shard"])
        for i in range(total):
            shard = PromptShard(int(batch["shard"][i]), tuple(batch["prompt_ids"][i]),
                                tuple(batch["prompts"][i]), int(batch["samples"][i]))
            table = generate_shard(self.lm, shard, self.run_seed, self.settings, self.where)
            write_part(self.out_dir, shard.shard, table)
            rows.append(table.num_rows)
            tokens.append(int(sum(table.column("new_tokens").to_pylist())))
            if self.progress is not None:
                self.progress(i + 1, total)
        return {"rows": np.asarray(rows), "tokens": np.asarray(tokens)}


def actor_device(generate: GenerateSection, gpus: float) -> str | None:
    """Several GPUs per worker: shard the model over them; else the configured device."""
    return "auto" if gpus > 1 else generate.device


@dataclass(frozen=True)
class GenerationJob:
    """What to sample: the shards, the model, how it loads and samples, where parts go."""

    shards: Sequence[PromptShard]
    model: str
    generate: GenerateSection
    settings: SamplingSettings
    run_seed: int
    out_dir: str


def generate_shards(executor: Executor, job: GenerationJob, resources: Resources,
                    progress: Callable[[int, int], None] | None = None
                    ) -> tuple[pa.Table, dict[str, int]]:
    """Generate every shard not yet in `out_dir`; (all parts, shards generated per worker)."""
    todo = pending_shards(job.out_dir, job.shards)
    workers: dict[str, int] = {}
    if todo:
        columns = {"shard": np.asarray([s.shard for s in todo]),
                   "prompt_ids": _objects([list(s.prompt_ids) for s in todo]),
                   "prompts": _objects([list(s.prompts) for s in todo]),
                   "samples": np.asarray([s.samples for s in todo])}
        g = job.generate
        actor = ActorSpec(GenerateActor, {
            "model": job.model, "dtype": g.dtype, "device": actor_device(g, resources.gpus),
            "trust_remote_code": g.trust_remote_code, "run_seed": job.run_seed,
            "settings": vars(job.settings), "out_dir": job.out_dir}, "generate")
        workers = executor.map_batches(actor, columns, resources, 1, progress).workers
    return read_parts(job.out_dir, job.shards), workers


def _objects(values: list) -> np.ndarray:
    """A 1-D object array of lists (numpy would make a 2-D array of equal-length lists)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
