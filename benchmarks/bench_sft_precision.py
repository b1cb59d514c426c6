"""sft_lora's cost and held-out loss in fp32, under bf16 autocast and with bf16 matmuls.

SmolLM2-135M-Instruct (offline) with fresh LoRA adapters, real Alpaca rows: the
same seeded fit (`--rows` training rows, one epoch, sft_lora's defaults) and the
same held-out loss in each mode, alternating, `--repeats` times:
- `fp32`: everything fp32;
- `bf16`: the forward passes under bf16 autocast (activations and the sums of the
  frozen and LoRA outputs in bf16; LoRA weights and optimizer state fp32);
- `bf16-matmul`: tensors stay fp32, float32 matrix products run on bf16 units
  inside (oneDNN's `fp32_precision = "bf16"` on a CPU, TF32 on a GPU), so outputs
  and the LoRA sum stay fp32.
Reports seconds per training row and per held-out row, their ratios to fp32, and
the held-out losses (the base model's and the fitted one's) in every mode.

    python benchmarks/bench_sft_precision.py --rows 48 --eval-rows 48 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from distill_core.generate.models import load_causal_lm
from distill_core.instruct.ingest import ingest_alpaca
from distill_core.instruct.rows import rows_of
from distill_core.instruct.sft import SftOptions, add_lora, pooled_loss, train_lora
from distill_core.instruct.tokens import encode_rows, pad_id_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TEXTDISTILL_DATA_DIR",
                                                             "/work/shared/datasets"))
    parser.add_argument("--rows", type=int, default=48)
    parser.add_argument("--eval-rows", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", nargs="+", default=["fp32", "bf16-matmul", "bf16"],
                        choices=["fp32", "bf16-matmul", "bf16"], help="the first is the baseline")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    corpus = ingest_alpaca(Path(args.data_dir)).corpus
    pool, held_out = rows_of(corpus, "train"), rows_of(corpus, "eval")
    picks = np.random.default_rng(0).permutation(len(pool))[:args.rows]
    rows = [pool[int(i)] for i in picks]
    held_out = held_out[:args.eval_rows]
    options = SftOptions(max_length=args.max_length)

    def fit(precision: str) -> dict[str, float]:
        lm = load_causal_lm("smollm2", device=args.device)
        pad = pad_id_of(lm.tokenizer)
        model = add_lora(lm.model, options, seed=0)
        train = encode_rows(lm.tokenizer, rows, options.max_length)
        evaluate = encode_rows(lm.tokenizer, held_out, options.max_length)
        scope = (torch.autocast(device_type=args.device.split(":")[0], dtype=torch.bfloat16)
                 if precision == "bf16" else contextlib.nullcontext())
        set_matmul(precision == "bf16-matmul")
        with scope:
            clock = time.perf_counter()
            before, _ = pooled_loss(model, evaluate, pad, lm.device, options.eval_batch_size)
            eval_s = time.perf_counter() - clock
            clock = time.perf_counter()
            train_lora(model, train, options, 0, pad, lm.device)
            train_s = time.perf_counter() - clock
            after, _ = pooled_loss(model, evaluate, pad, lm.device, options.eval_batch_size)
        set_matmul(False)
        return {"train_s": train_s, "eval_s": eval_s, "before": before, "after": after}

    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in args.modes}
    for _ in range(args.repeats):
        for precision in runs:
            result = fit(precision)
            runs[precision].append(result)
            print(precision, {k: round(v, 4) for k, v in result.items()}, flush=True)
    median = {p: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for p, rs in runs.items()}
    base = median[args.modes[0]]
    print(f"{len(rows)} training rows, {len(held_out)} held-out rows, {args.threads} threads, "
          f"{args.device}; ratios against {args.modes[0]}:")
    for mode, m in median.items():
        print(f"  {mode}: train {m['train_s'] / len(rows):.3f} s/row "
              f"({base['train_s'] / m['train_s']:.2f}x), eval {m['eval_s'] / len(held_out):.3f}"
              f" s/row ({base['eval_s'] / m['eval_s']:.2f}x); held-out loss before "
              f"{m['before']:.5f}, after {m['after']:.5f}")


def set_matmul(reduced: bool) -> None:
    """Float32 matrix products on bf16 units (CPU, oneDNN) or TF32 (CUDA), or plain fp32."""
    torch.backends.mkldnn.matmul.fp32_precision = "bf16" if reduced else "ieee"
    torch.backends.cuda.matmul.fp32_precision = "tf32" if reduced else "ieee"


if __name__ == "__main__":
    main()
