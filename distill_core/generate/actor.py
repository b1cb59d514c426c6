"""Generation through an executor: a decoder per worker, one prompt shard per batch.

Each worker loads the model once and writes every shard it generates as its
own Parquet part before returning a one-row summary, so a worker killed
mid-shard leaves nothing behind and the executor's retry regenerates the same
rows (seeds derive from the run seed and the shard). Shards already on disk
are not generated again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def generate_shards(executor: Executor, shards: Sequence[PromptShard], model: str,
                    generate: GenerateSection, settings: SamplingSettings, run_seed: int,
                    out_dir: str, resources: Resources,
                    progress: Callable[[int, int], None] | None = None
                    ) -> tuple[pa.Table, dict[str, int]]:
    """Generate every shard not yet in `out_dir`; (all parts, shards generated per worker)."""
    todo = pending_shards(out_dir, shards)
    workers: dict[str, int] = {}
    if todo:
        columns = {"shard": np.asarray([s.shard for s in todo]),
                   "prompt_ids": np.asarray([list(s.prompt_ids) for s in todo] + [None],
                                            dtype=object)[:-1],
                   "prompts": np.asarray([list(s.prompts) for s in todo] + [None],
                                         dtype=object)[:-1],
                   "samples": np.asarray([s.samples for s in todo])}
        actor = ActorSpec(GenerateActor, {
            "model": model, "dtype": generate.dtype,
            "device": actor_device(generate, resources.gpus),
            "trust_remote_code": generate.trust_remote_code, "run_seed": run_seed,
            "settings": vars(settings), "out_dir": out_dir}, "generate")
        workers = executor.map_batches(actor, columns, resources, 1, progress).workers
    return read_parts(out_dir, shards), workers
