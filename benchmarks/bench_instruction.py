"""Instruction data selection on Alpaca and GSM8K, scored by `sft_lora`'s held-out response loss.

For each budget (a fraction of the pool when < 1, else a row count), each
method and each seed: rank the pool (`distill_core.instruct.methods`), take the
first `budget` rows, fine-tune the decoder with LoRA on them for `--epochs`
passes over the rows (default 1, sft_lora's protocol; `--steps` gives every cell
the same step count instead) and score the held-out response loss per token. `full` trains on the
whole pool under the same protocol. Methods: random, kmeans (prompt embeddings),
ifd (Cherry: highest IFD below 1), loss (highest conditioned reference loss),
deita (IFD with a cosine cap on prompt embeddings), less (projected LoRA
gradients against a target set drawn from the pool, after a LoRA warm-up on 5 %
of the pool). Signals are computed once per dataset and timed (seconds per row).

Alpaca: the held-out split is 10 % of the file (seeded); GSM8K: its test file.
`--max-rows` caps the pool and `--eval-rows` the held-out rows (seeded, fixed for
every cell). Prints one line per cell (wall time, peak RSS) and a summary with
mean +- std and the share of the random-to-full gap each method closes.

    python benchmarks/bench_instruction.py --dataset alpaca --budgets 0.01 0.05 0.1
    python benchmarks/bench_instruction.py --dataset gsm8k --budgets 100 500 \\
        --exact-match-rows 100
    # cost of one cell on this CPU:
    python benchmarks/bench_instruction.py --dataset alpaca --budgets 0.01 --seeds 0 \\
        --methods random ifd --max-rows 400 --eval-rows 50 --steps 20 --threads 1

On a GPU node add `--device cuda --threads 0`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill_core.instruct.ingest import ingest_alpaca, ingest_gsm8k
from distill_core.instruct.methods import (
    Ranking,
    influence_ranking,
    kmeans_ranking,
    quality_diversity_ranking,
    random_ranking,
    score_ranking,
)
from distill_core.instruct.rows import InstructionRow, rows_of
from distill_core.instruct.sft import SftOptions, add_lora, sft_lora
from distill_core.instruct.signals import difficulty, gradient_features, warm_lora

METHODS = ["random", "kmeans", "ifd", "loss", "deita", "less", "full"]
DEFAULT_BUDGETS = {"alpaca": [0.01, 0.05, 0.1], "gsm8k": [100, 500]}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def capped(rows: list[InstructionRow], limit: int) -> list[InstructionRow]:
    """The first `limit` rows of a fixed (seed 0) permutation; all rows when limit is 0."""
    if not limit or limit >= len(rows):
        return rows
    keep = np.sort(np.random.default_rng(0).permutation(len(rows))[:limit])
    return [rows[int(i)] for i in keep]


class Signals:
    """Per-pool signals, computed on first use and timed."""

    def __init__(self, pool: list[InstructionRow], args: argparse.Namespace) -> None:
        self.pool, self.args = pool, args
        self.cache: dict[str, Any] = {}
        self.cost: dict[str, dict[str, float]] = {}

    def _timed(self, name: str, compute) -> Any:
        if name not in self.cache:
            clock = time.perf_counter()
            self.cache[name] = compute()
            seconds = time.perf_counter() - clock
            self.cost[name] = {"seconds": round(seconds, 2),
                               "seconds_per_row": round(seconds / len(self.pool), 4),
                               "peak_rss_mb": round(peak_rss_mb())}
            print(f"signal {name}: {seconds:.1f}s for {len(self.pool)} rows, "
                  f"peak RSS {peak_rss_mb():.0f} MiB", flush=True)
        return self.cache[name]

    def embeddings(self) -> np.ndarray:
        def compute() -> np.ndarray:
            from distill_core.signals.encoder import SentenceEncoder

            encoder = SentenceEncoder(self.args.encoder, device=self.args.device)
            return encoder.encode([r.prompt for r in self.pool])

        return self._timed("embeddings", compute)

    def difficulty(self):
        def compute():
            from distill_core.generate.models import load_causal_lm

            lm = load_causal_lm(self.args.model, device=self.args.device)
            return difficulty(lm.model, lm.tokenizer, self.pool, lm.device,
                              max_length=self.args.max_length,
                              batch_size=self.args.eval_batch_size)

        return self._timed("difficulty", compute)

    def gradients(self) -> np.ndarray:
        def compute() -> np.ndarray:
            from distill_core.generate.models import load_causal_lm

            lm = load_causal_lm(self.args.model, device=self.args.device)
            options = sft_options(self.args).model_copy(
                update={"steps": self.args.less_warmup_steps})
            model = add_lora(lm.model, options, seed=0)
            warm = max(8, len(self.pool) // 20)
            picks = np.random.default_rng(0).permutation(len(self.pool))[:warm]
            warm_lora(model, lm.tokenizer, [self.pool[int(i)] for i in picks], lm.device,
                      options, seed=0)
            return gradient_features(model, lm.tokenizer, self.pool, lm.device, k=self.args.k,
                                     seed=0, max_length=self.args.max_length)

        return self._timed("gradients", compute)


def rank(method: str, signals: Signals, budget: int, seed: int) -> Ranking:
    n = len(signals.pool)
    if method == "random":
        return random_ranking(n, budget, seed)
    if method == "kmeans":
        return kmeans_ranking(signals.embeddings(), budget, seed)
    if method == "ifd":
        return score_ranking(signals.difficulty().ifd, budget, max_score=1.0)
    if method == "loss":
        return score_ranking(signals.difficulty().conditioned, budget)
    if method == "deita":
        return quality_diversity_ranking(signals.difficulty().ifd, signals.embeddings(), budget,
                                         max_cosine=signals.args.max_cosine, max_score=1.0)
    if method == "less":
        return influence_ranking(signals.gradients(), budget, seed,
                                 target_size=signals.args.target_size)
    raise ValueError(f"unknown method {method!r}")


def sft_options(args: argparse.Namespace) -> SftOptions:
    return SftOptions(model=args.model, epochs=args.epochs, steps=args.steps,
                      batch_size=args.batch_size, lr=args.lr,
                      max_length=args.max_length, eval_batch_size=args.eval_batch_size,
                      exact_match_rows=args.exact_match_rows, device=args.device,
                      max_new_tokens=args.max_new_tokens)


def run_dataset(name: str, args: argparse.Namespace) -> tuple[list[dict], dict]:
    data_dir = Path(args.data_dir)
    clock = time.perf_counter()
    result = ingest_alpaca(data_dir) if name == "alpaca" else ingest_gsm8k(data_dir)
    pool = capped(rows_of(result.corpus, "train"), args.max_rows)
    held_out = capped(rows_of(result.corpus, "eval"), args.eval_rows)
    print(f"{name}: {len(pool)} pool rows, {len(held_out)} held-out rows "
          f"(ingest {time.perf_counter() - clock:.1f}s)", flush=True)
    signals = Signals(pool, args)
    options = sft_options(args)
    if name != "gsm8k":  # exact match of a final number is a GSM8K metric
        options = options.model_copy(update={"exact_match_rows": 0})
    cells: list[dict] = []
    budgets = args.budgets or DEFAULT_BUDGETS[name]
    for value in budgets:
        budget = max(1, round(value * len(pool))) if value < 1 else int(value)
        for method in args.methods:
            if method == "full" and value != budgets[0]:
                continue  # one full-data cell per seed
            for seed in args.seeds:
                started = time.perf_counter()
                chosen = list(range(len(pool))) if method == "full" else \
                    rank(method, signals, budget, seed).selection(budget).tolist()
                scored = sft_lora([pool[i] for i in chosen], held_out, options, seed=seed)
                label = f"{value:g}" if value < 1 else str(int(value))
                cell = {"dataset": name, "budget": "full" if method == "full" else label,
                        "rows": len(chosen), "method": method, "seed": seed,
                        "eval_loss": scored.eval_loss, "perplexity": scored.perplexity,
                        "exact_match": scored.exact_match,
                        "train_loss_last": scored.train_losses[-1] if scored.train_losses
                        else None,
                        "sft_seconds": round(scored.wall_s, 1),
                        "train_seconds": round(scored.train_s, 1),
                        "eval_seconds": round(scored.eval_s, 1),
                        "cell_seconds": round(time.perf_counter() - started, 1),
                        "peak_rss_mb": round(peak_rss_mb())}
                cells.append(cell)
                print(json.dumps(cell), flush=True)
    return cells, signals.cost


def summary(cells: list[dict]) -> list[str]:
    groups: dict[tuple, list[float]] = {}
    for c in cells:
        groups.setdefault((c["dataset"], str(c["budget"]), c["method"]), []).append(c["eval_loss"])
    full = {d: statistics.mean(v) for (d, b, m), v in groups.items() if m == "full"}
    random = {(d, b): statistics.mean(v) for (d, b, m), v in groups.items() if m == "random"}
    lines = ["| dataset | budget | method | held-out loss | gap closed |", "|---|---|---|---|---|"]
    for (d, b, m), values in groups.items():
        mean = statistics.mean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        gap = "-"
        if m not in ("random", "full") and d in full and (d, b) in random \
                and random[(d, b)] != full[d]:
            gap = f"{(random[(d, b)] - mean) / (random[(d, b)] - full[d]):.2f}"
        lines.append(f"| {d} | {b} | {m} | {mean:.4f} ± {std:.4f} | {gap} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TEXTDISTILL_DATA_DIR",
                                                             "/work/shared/datasets"))
    parser.add_argument("--dataset", choices=["alpaca", "gsm8k"], nargs="+", default=["alpaca"])
    parser.add_argument("--budgets", type=float, nargs="+", default=None,
                        help="fractions of the pool (< 1) or row counts")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="smollm2", help="decoder: name or folder")
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    parser.add_argument("--max-rows", type=int, default=0, help="cap on pool rows (0: all)")
    parser.add_argument("--eval-rows", type=int, default=200, help="held-out rows (0: all)")
    parser.add_argument("--epochs", type=int, default=SftOptions().epochs,
                        help="passes over each set's rows (the default protocol)")
    parser.add_argument("--steps", type=int, default=None,
                        help="a fixed step count for every set instead of --epochs")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=SftOptions().lr)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--eval-batch-size", type=int, default=16)
    parser.add_argument("--max-cosine", type=float, default=0.9, help="deita's cosine cap")
    parser.add_argument("--k", type=int, default=256, help="less: projection dimension")
    parser.add_argument("--target-size", type=int, default=32, help="less: target rows")
    parser.add_argument("--less-warmup-steps", type=int, default=20)
    parser.add_argument("--exact-match-rows", type=int, default=0,
                        help="GSM8K: held-out rows decoded greedily for exact match")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default=None, help="cuda if available, else cpu")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    cells: list[dict] = []
    costs: dict[str, dict] = {}
    for name in args.dataset:
        found, costs[name] = run_dataset(name, args)
        cells.extend(found)
    print("\n".join(summary(cells)))
    print(f"total {time.perf_counter() - started:.1f}s, peak RSS {peak_rss_mb():.0f} MiB")
    if args.out is not None:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "cells": cells, "signal_cost": costs}, indent=1))


if __name__ == "__main__":
    main()
