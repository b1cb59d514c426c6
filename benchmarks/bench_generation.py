"""Tokens per second: the Ray generation path against a plain loop over the model's `generate`.

Both sides sample the same rendered few-shot prompts (llm_synth prompts built
from real SST-2 rows, read through the ordinary ingest path) with the same
model, batch size, token budget and seeds, one after the other in one run:

- plain: load the model in this process, then `sample()` over every prompt
  (one `model.generate` call per batch);
- ray: `ray_generate` over the same prompts cut into shards: a Ray Data actor
  pool (the model loaded once per actor), each shard written as a Parquet part.

Both times include loading the model, and the Ray time also starts the actor
pool (worker process, imports), so the ratio is what a job sees end to end on
a running cluster; starting Ray itself (`ray.init`) is reported apart. Only
generated tokens count.

    TEXTDISTILL_DATA_DIR=../shared/datasets python benchmarks/bench_generation.py \\
        [--model SmolLM2-135M-Instruct] [--prompts 48] [--batch-size 8] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

import numpy as np
import pyarrow.compute as pc

from distill_core.config import GenerateSection
from distill_core.generate.models import load_causal_lm, load_tokenizer
from distill_core.generate.prompts import few_shot_messages
from distill_core.generate.sampling import SamplingSettings, render_prompts, sample
from distill_core.generate.shards import make_shards, shard_seeds
from distill_core.ingest.ingest import data_dir_from, ingest_dataset, resolve_dataset


def sst2_prompts(n: int, shots: int, tokenizer) -> list[str]:
    corpus = ingest_dataset(resolve_dataset("sst2"), data_dir_from(None)).corpus
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    texts, labels = train.column("text").to_pylist(), train.column("label").to_pylist()
    rng = np.random.default_rng(0)
    messages = []
    for i in range(n):
        label = ("negative", "positive")[i % 2]
        rows = [j for j in rng.choice(len(texts), 50, replace=False) if labels[j] == label]
        messages.append(few_shot_messages(label, [texts[j] for j in rows[:shots]], 3))
    return render_prompts(tokenizer, messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--gpus-per-actor", type=float, default=0.0)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    prompts = sst2_prompts(args.prompts, 4, load_tokenizer(args.model))
    ids = [f"p{i}" for i in range(len(prompts))]
    settings = SamplingSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    run_seed = 7
    shards = make_shards(ids, prompts, 1, args.shard_size)

    start = time.perf_counter()
    lm = load_causal_lm(args.model, args.dtype, args.device)
    loaded = time.perf_counter()
    plain_tokens = 0
    for shard in shards:  # the same seeds as the Ray path
        plain_tokens += sum(g.new_tokens for g in sample(lm, shard.prompts,
                                                         shard_seeds(run_seed, shard, 0),
                                                         settings))
    plain_s = time.perf_counter() - start
    plain_generate_s = time.perf_counter() - loaded
    del lm

    from distill_core.generate.actor import GenerationJob, generate_shards
    from distill_core.pipeline.executor import Resources
    from tasks.ray_executor import RayExecutor, ensure_ray

    started = time.perf_counter()
    ensure_ray(None)  # a cluster is up before a job runs on it: not part of either side
    ray_init_s = time.perf_counter() - started
    out_dir = tempfile.mkdtemp(prefix="bench-generation-")
    executor = RayExecutor(torch_threads=args.threads)
    resources = Resources(cpus=1, gpus=args.gpus_per_actor, workers=1)
    generate = GenerateSection(model=args.model, dtype=args.dtype, device=args.device)
    start = time.perf_counter()
    job = GenerationJob(shards, args.model, generate, settings, run_seed, out_dir)
    table, workers = generate_shards(executor, job, resources)
    ray_s = time.perf_counter() - start
    ray_tokens = int(sum(table.column("new_tokens").to_pylist()))
    shutil.rmtree(out_dir, ignore_errors=True)

    plain_rate, ray_rate = plain_tokens / plain_s, ray_tokens / ray_s
    result = {
        "model": args.model, "prompts": len(prompts), "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens, "threads": args.threads,
        "device": str(args.device or ("cuda" if torch.cuda.is_available() else "cpu")),
        "plain": {"new_tokens": plain_tokens, "seconds": round(plain_s, 2),
                  "seconds_after_load": round(plain_generate_s, 2),
                  "tokens_per_s": round(plain_rate, 2)},
        "ray": {"new_tokens": ray_tokens, "seconds": round(ray_s, 2),
                "tokens_per_s": round(ray_rate, 2), "workers": workers,
                "ray_init_s_not_counted": round(ray_init_s, 2)},
        "ray_over_plain": round(ray_rate / plain_rate, 3),
        "same_tokens": plain_tokens == ray_tokens,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
