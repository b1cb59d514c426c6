"""LESS's gradient features: each row alone (the old path) against rows batched by length.

SmolLM2-135M-Instruct (offline) with LoRA warmed up as LESS does, then the same
Alpaca rows' projected gradients with `together=1` (one forward and backward pass
per row) and `together=N` (one pass per N like-length rows, per-row gradients from
hooks), alternating, each timed `--repeats` times. Reports seconds per row, the
ratio, the largest difference relative to the features' scale, and how many of the
rows LESS would pick (highest cosine to the mean of a target set) agree.

    python benchmarks/bench_lora_gradients.py --rows 64 --together 8 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from distill_core.generate.models import load_causal_lm
from distill_core.instruct.ingest import ingest_alpaca
from distill_core.instruct.methods import influence_ranking
from distill_core.instruct.rows import rows_of
from distill_core.instruct.sft import SftOptions, add_lora
from distill_core.instruct.signals import gradient_features, warm_lora


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TEXTDISTILL_DATA_DIR",
                                                             "/work/shared/datasets"))
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--together", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pool = rows_of(ingest_alpaca(Path(args.data_dir)).corpus, "train")
    picks = np.random.default_rng(0).permutation(len(pool))
    rows = [pool[int(i)] for i in picks[:args.rows]]
    warm = [pool[int(i)] for i in picks[args.rows:args.rows + 32]]
    lm = load_causal_lm("smollm2", device=args.device)
    options = SftOptions(steps=10, batch_size=8, max_length=args.max_length)
    model = add_lora(lm.model, options, seed=0)
    warm_lora(model, lm.tokenizer, warm, lm.device, options, seed=0)

    def run(together: int) -> tuple[float, np.ndarray]:
        clock = time.perf_counter()
        features = gradient_features(model, lm.tokenizer, rows, lm.device, k=256, seed=0,
                                     max_length=args.max_length, together=together)
        return time.perf_counter() - clock, features

    times: dict[int, list[float]] = {1: [], args.together: []}
    results: dict[int, np.ndarray] = {}
    for _ in range(args.repeats):
        for together in (1, args.together):
            seconds, results[together] = run(together)
            times[together].append(seconds)
            print(f"together={together}: {seconds:.1f} s", flush=True)
    alone, batched = results[1], results[args.together]
    scale = float(np.abs(alone).max())
    budget = max(1, args.rows // 4)
    pick_alone = set(influence_ranking(alone, budget, 0, target_size=8).selection(budget).tolist())
    pick_batched = set(influence_ranking(batched, budget, 0, target_size=8)
                       .selection(budget).tolist())
    per_row = {t: statistics.median(v) / len(rows) for t, v in times.items()}
    print(f"{len(rows)} rows, max length {args.max_length}, {args.threads} threads, "
          f"{args.device}: alone {per_row[1]:.3f} s/row, together={args.together} "
          f"{per_row[args.together]:.3f} s/row, ratio {per_row[1] / per_row[args.together]:.2f}x; "
          f"largest difference {np.abs(batched - alone).max() / scale:.2e} of the scale; "
          f"LESS picks of {budget}: {len(pick_alone & pick_batched)} shared")


if __name__ == "__main__":
    main()
