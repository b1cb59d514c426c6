"""Instruction data selection on Alpaca and GSM8K, scored by `sft_lora`'s held-out response loss.

For each budget (a fraction of the pool when < 1, else a row count), each
method and each seed: rank the pool (`distill_core.instruct.methods`), take the
first `budget` rows, fine-tune the decoder with LoRA on them for `--epochs`
passes over the rows (default 1, sft_lora's protocol; `--steps` gives every cell
the same step count instead) and score the held-out response loss per token. `full` trains on the
whole pool under the same protocol. Methods: random, kmeans (prompt embeddings),
longest (the longest responses first: Zhao et al. 2024),
ifd (Cherry: highest IFD below 1), loss (highest conditioned reference loss),
deita (IFD with a cosine cap on prompt embeddings), less (projected LoRA
gradients against a target set drawn from the pool, after a LoRA warm-up on 5 %
of the pool). Signals are computed once per dataset and timed (seconds per row).

Alpaca: the held-out split is 10 % of the file (seeded); GSM8K: its test file.
`--max-rows` caps the pool and `--eval-rows` the held-out rows (seeded, fixed for
every cell). Prints one line per cell (wall time, peak RSS) and a summary with
mean +- std and the share of the random-to-full gap each method closes.

`--signal-cache DIR` keeps each signal (embeddings, difficulty, gradients) as an
.npz with a manifest (the pool's row ids, the settings it depends on, the
file's sha256); a later run with the same pool and settings loads it after
checking all three, else computes it again. `--signals-only` computes the
signals and stops: signals can be made once (the embeddings on a machine that
has the encoder) and every seed's cells run in parallel processes from them.

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

from distill_core.artifacts.store import file_sha256
from distill_core.bench.instruction import budget_label
from distill_core.hashing import stable_hash
from distill_core.instruct.ingest import ingest_alpaca, ingest_gsm8k
from distill_core.instruct.methods import (
    Ranking,
    influence_ranking,
    kmeans_ranking,
    longest_ranking,
    quality_diversity_ranking,
    random_ranking,
    score_ranking,
)
from distill_core.instruct.rows import InstructionRow, rows_of
from distill_core.instruct.sft import SftOptions, add_lora, sft_lora
from distill_core.instruct.signals import Difficulty, difficulty, gradient_features, warm_lora

METHODS = ["random", "kmeans", "longest", "ifd", "loss", "deita", "less", "full"]
DEFAULT_BUDGETS = {"alpaca": [0.01, 0.05, 0.1], "gsm8k": [100, 500]}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def capped(rows: list[InstructionRow], limit: int) -> list[InstructionRow]:
    """The first `limit` rows of a fixed (seed 0) permutation; all rows when limit is 0."""
    if not limit or limit >= len(rows):
        return rows
    keep = np.sort(np.random.default_rng(0).permutation(len(rows))[:limit])
    return [rows[int(i)] for i in keep]


def signal_settings(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """What signal `name` depends on besides the pool rows."""
    if name == "embeddings":
        return {"encoder": args.encoder}
    base: dict[str, Any] = {"model": args.model, "max_length": args.max_length}
    if args.fast_matmul:  # (absent otherwise: caches made before the flag stay valid)
        base["fast_matmul"] = True
    if name == "difficulty":
        return base
    return {**base, "k": args.k, "less_warmup_steps": args.less_warmup_steps,
            "lr": args.lr, "batch_size": args.batch_size, "seed": 0,
            "gradient_rows": args.gradient_rows}


class SignalCache:
    """Signals as .npz files beside manifests; a file is reused only when its manifest
    names the same pool rows and settings and the file still has the recorded sha256."""

    def __init__(self, folder: Path, pool: list[InstructionRow]) -> None:
        self.folder = folder
        self.pool_sha = stable_hash([r.example_id for r in pool])
        self.rows = len(pool)

    def _paths(self, name: str, settings: dict[str, Any]) -> tuple[Path, Path]:
        key = stable_hash({"signal": name, "settings": settings, "pool": self.pool_sha})[:16]
        return (self.folder / f"{name}-{key}.npz", self.folder / f"{name}-{key}.json")

    def load(self, name: str, settings: dict[str, Any]) -> dict[str, np.ndarray] | None:
        data, manifest = self._paths(name, settings)
        if not (data.exists() and manifest.exists()):
            return None
        try:
            recorded = json.loads(manifest.read_text(encoding="utf-8"))
            if not isinstance(recorded, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            print(f"signal {name}: cached {manifest.name} is damaged ({exc}): computing it "
                  "again", flush=True)
            return None
        problems = [what for what, ok in (
            ("pool rows", recorded.get("pool_sha") == self.pool_sha),
            ("settings", recorded.get("settings") == settings),
            ("sha256", recorded.get("sha256") == file_sha256(data))) if not ok]
        if problems:
            print(f"signal {name}: cached {data.name} differs in {', '.join(problems)}: "
                  "computing it again", flush=True)
            return None
        with np.load(data) as arrays:
            loaded = {key: arrays[key] for key in arrays.files}
        if any(len(v) != self.rows for v in loaded.values()):
            print(f"signal {name}: cached {data.name} has the wrong row count: computing it "
                  "again", flush=True)
            return None
        return loaded

    def save(self, name: str, settings: dict[str, Any], arrays: dict[str, np.ndarray],
             cost: dict[str, float]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        data, manifest = self._paths(name, settings)
        with open(data, "wb") as handle:
            np.savez(handle, **arrays)
        manifest.write_text(json.dumps({
            "signal": name, "settings": settings, "pool_sha": self.pool_sha,
            "rows": self.rows, "sha256": file_sha256(data), "cost": cost,
            "torch": torch.__version__, "device": describe_device(), "numpy": np.__version__},
            indent=1))


def describe_device() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


class Signals:
    """Per-pool signals, computed on first use (or loaded from a signal cache) and timed."""

    def __init__(self, pool: list[InstructionRow], args: argparse.Namespace) -> None:
        self.pool, self.args = pool, args
        self.cache: dict[str, Any] = {}
        self.cost: dict[str, dict[str, float]] = {}
        self.store = SignalCache(args.signal_cache, pool) if args.signal_cache else None

    def _timed(self, name: str, compute) -> Any:
        if name in self.cache:
            return self.cache[name]
        settings = signal_settings(name, self.args)
        if self.store is not None and (found := self.store.load(name, settings)) is not None:
            self.cache[name] = from_arrays(name, found)
            self.cost[name] = {"cached": 1.0}
            print(f"signal {name}: loaded from the cache for {len(self.pool)} rows", flush=True)
            return self.cache[name]
        clock = time.perf_counter()
        self.cache[name] = compute()
        seconds = time.perf_counter() - clock
        self.cost[name] = {"seconds": round(seconds, 2),
                           "seconds_per_row": round(seconds / len(self.pool), 4),
                           "peak_rss_mb": round(peak_rss_mb())}
        print(f"signal {name}: {seconds:.1f}s for {len(self.pool)} rows, "
              f"peak RSS {peak_rss_mb():.0f} MiB", flush=True)
        if self.store is not None:
            self.store.save(name, settings, to_arrays(self.cache[name]), self.cost[name])
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
                                     seed=0, max_length=self.args.max_length,
                                     together=self.args.gradient_rows)

        return self._timed("gradients", compute)


def to_arrays(value: Any) -> dict[str, np.ndarray]:
    if isinstance(value, Difficulty):
        return {"conditioned": value.conditioned, "direct": value.direct}
    return {"values": np.asarray(value)}


def from_arrays(name: str, arrays: dict[str, np.ndarray]) -> Any:
    if name == "difficulty":
        return Difficulty(conditioned=arrays["conditioned"], direct=arrays["direct"])
    return arrays["values"]


SIGNALS_OF = {"kmeans": ["embeddings"], "ifd": ["difficulty"], "loss": ["difficulty"],
              "deita": ["difficulty", "embeddings"], "less": ["gradients"]}


def rank(method: str, signals: Signals, budget: int, seed: int) -> Ranking:
    n = len(signals.pool)
    if method == "random":
        return random_ranking(n, budget, seed)
    if method == "kmeans":
        return kmeans_ranking(signals.embeddings(), budget, seed)
    if method == "longest":
        return longest_ranking([row.response for row in signals.pool], budget)
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
    if args.signals_only:
        for needed in dict.fromkeys(n for m in args.methods for n in SIGNALS_OF.get(m, [])):
            getattr(signals, needed)()
        return [], signals.cost
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
                label = budget_label(value)
                cell = {"dataset": name, "budget": "full" if method == "full" else label,
                        "rows": len(chosen), "method": method, "seed": seed,
                        "device": scored.device,
                        "eval_loss": scored.eval_loss, "perplexity": scored.perplexity,
                        "exact_match": scored.exact_match,
                        "train_loss_last": scored.train_losses[-1] if scored.train_losses
                        else None,
                        "sft_seconds": round(scored.wall_s, 1),
                        "train_seconds": round(scored.train_s, 1),
                        "eval_seconds": round(scored.eval_s, 1),
                        "cell_seconds": round(time.perf_counter() - started, 1),
                        "matmul": "fast" if args.fast_matmul else "fp32",
                        "peak_rss_mb": round(peak_rss_mb())}
                cells.append(cell)
                print(json.dumps(cell), flush=True)
                if args.cells_jsonl is not None:  # one write per line: parallel runs append
                    with open(args.cells_jsonl, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(cell) + "\n")
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
    parser.add_argument("--gradient-rows", type=int, default=8,
                        help="less: rows per backward pass (1: each row alone)")
    parser.add_argument("--signal-cache", type=Path, default=None,
                        help="keep and reuse signals here (checked against their manifests)")
    parser.add_argument("--signals-only", action="store_true",
                        help="compute the methods' signals (into --signal-cache) and stop")
    parser.add_argument("--exact-match-rows", type=int, default=0,
                        help="GSM8K: held-out rows decoded greedily for exact match")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--fast-matmul", action="store_true",
                        help="float32 matrix products on TF32 (CUDA) or bf16 units (oneDNN); "
                        "tensors and the LoRA sums stay fp32 (bench_sft_precision.py measures "
                        "what it costs in loss)")
    parser.add_argument("--device", default=None, help="cuda if available, else cpu")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    parser.add_argument("--cells-jsonl", type=Path, default=None,
                        help="also append each cell as a JSON line here, as it finishes")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.fast_matmul:
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
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
