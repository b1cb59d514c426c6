"""Choose `sft_lora`'s protocol on training data only: does fine-tuning move a held-out loss?

The Alpaca subset's evaluation split (10 % of the file, seed 0) is never read.
From the training pool a seeded `--dev-rows` part is carved as a development
split; random sets of each `--sizes` rows are drawn (seeded) from the rest. For
every named setting (epochs, lr, LoRA rank and targets, batch size, max length)
each set is fine-tuned and scored on the development rows (response loss per
token); the base model (no fine-tune) is scored once. A protocol is useful when
random 5 % moves the loss clearly away from the base model and a bigger random
set moves it further: methods can then be told apart.

    OMP_NUM_THREADS=1 python benchmarks/sft_protocol.py --settings e1 e2-lr1e3 \\
        --sizes 225 900 --dev-rows 50
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from distill_core.instruct.ingest import ingest_alpaca
from distill_core.instruct.rows import rows_of
from distill_core.instruct.sft import SftOptions, sft_lora

SETTINGS: dict[str, dict] = {
    "e1": {"epochs": 1, "lr": 2e-4},
    "e1-lr1e3": {"epochs": 1, "lr": 1e-3},
    "e2-lr1e3": {"epochs": 2, "lr": 1e-3},
    "e1-lr1e3-all": {"epochs": 1, "lr": 1e-3, "target_modules": ["all-linear"]},
    "e2-lr5e4-all": {"epochs": 2, "lr": 5e-4, "target_modules": ["all-linear"]},
    "e1-lr3e3": {"epochs": 1, "lr": 3e-3},
    "e1-lr1e3-r16": {"epochs": 1, "lr": 1e-3, "lora_r": 16, "lora_alpha": 32},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=["e1", "e1-lr1e3"],
                        choices=sorted(SETTINGS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[225, 900])
    parser.add_argument("--dev-rows", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="the random sets and training")
    parser.add_argument("--dev-seed", type=int, default=1000, help="the development split")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--base", action="store_true", help="Also score the base model.")
    parser.add_argument("--data-dir", default=os.environ.get("TEXTDISTILL_DATA_DIR",
                                                             "/work/shared/datasets"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pool = rows_of(ingest_alpaca(Path(args.data_dir)).corpus, "train")
    order = np.random.default_rng(args.dev_seed).permutation(len(pool))
    dev = [pool[int(i)] for i in np.sort(order[:args.dev_rows])]
    rest = [pool[int(i)] for i in order[args.dev_rows:]]
    print(json.dumps({"pool": len(pool), "dev": len(dev), "rest": len(rest)}), flush=True)
    common = {"batch_size": args.batch_size, "max_length": args.max_length,
              "eval_batch_size": 16}
    if args.base:
        clock = time.perf_counter()
        base = sft_lora(rest[:1], dev, SftOptions(epochs=0, **common), seed=args.seed)
        print(json.dumps({"setting": "base", "rows": 0, "dev_loss": round(base.eval_loss, 5),
                          "wall_s": round(time.perf_counter() - clock, 1)}), flush=True)
    for name in args.settings:
        for size in args.sizes:
            chosen = np.random.default_rng(args.seed).permutation(len(rest))[:size]
            train = [rest[int(i)] for i in chosen]
            options = SftOptions(**{**common, **SETTINGS[name]})
            result = sft_lora(train, dev, options, seed=args.seed)
            print(json.dumps({"setting": name, "rows": size, "seed": args.seed,
                              "dev_loss": round(result.eval_loss, 5),
                              "steps": len(result.train_losses),
                              "train_loss_last": round(result.train_losses[-1], 4),
                              "train_s": round(result.train_s, 1),
                              "eval_s": round(result.eval_s, 1)}), flush=True)


if __name__ == "__main__":
    main()
