"""Learned distillation on SST-2 with real MiniLM: meta-matching at k = 1, with and without
attention labels, scored by `embeds_finetune` on the validation split.

For each budget (synthetic examples per class) and each of {no attention labels,
attention labels}: initialise from the k-means prototypes of a pool of training
rows (MiniLM mean-pooled features; attention labels start at the encoder's own
attention on the prototypes), run `--steps` outer steps of meta-matching (one
inner SGD step from the pretrained encoder with a fresh head, zero by default,
outer loss = cross-entropy on a real batch of the pool), then train
`embeds_finetune` (the exact inner protocol) and score it on the 872 validation
rows: with the head seed of the last outer step, and with `--eval-heads`
unseen head seeds (mean ± std; identical for a zero head). The same is done on
the untouched prototypes (step 0) for reference. Reports seconds per outer step
and peak RSS. `--holdout N` keeps N pool rows out of the distillation and
scores on them too (training data only: what the defaults were chosen on).

    python benchmarks/bench_learned.py --steps 200 --per-class 1 5 --seeds 0 1 2

On a GPU node: add `--device cuda --threads 0` (0 keeps torch's default).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's code

from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.learned import (
    FunctionalLearner,
    InnerConfig,
    MetaMatching,
    OuterConfig,
    RealData,
    accuracy,
    embeds_finetune,
    prototypes,
)
from distill_core.models.finetune import load_pretrained
from distill_core.seeds import derive_seed


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def split_rows(corpus, split: str) -> dict:
    rows = [r for r in corpus.select(["split", "text", "label_id", "example_id"]).to_pylist()
            if r["split"] == split]
    return {"texts": [r["text"] for r in rows],
            "labels": np.asarray([r["label_id"] for r in rows]),
            "ids": [r["example_id"] for r in rows]}


def score(learner: FunctionalLearner, synthetic, inner: InnerConfig, seeds: list[int],
          dev: RealData) -> list[float]:
    return [accuracy(learner, embeds_finetune(learner, synthetic, inner, s), dev) for s in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TEXTDISTILL_DATA_DIR",
                                                             "/work/shared/datasets"))
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--steps", type=int, default=200, help="outer steps")
    parser.add_argument("--attention-steps", type=int, default=None,
                        help="outer steps with attention labels (default: --steps)")
    parser.add_argument("--per-class", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--attention", choices=["both", "off", "on"], default="both")
    parser.add_argument("--pool", type=int, default=4000, help="training rows used (0: all)")
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--real-batch", type=int, default=256)
    parser.add_argument("--attention-real-batch", type=int, default=64,
                        help="real rows per outer step with attention labels (the encoder "
                        "moves, so each step runs the real batch through it with a graph)")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per real row")
    parser.add_argument("--holdout", type=int, default=0, help="pool rows held out")
    parser.add_argument("--init-lr", type=float, default=1.0, help="initial inner lr")
    parser.add_argument("--head-init", choices=["zero", "random"], default="zero")
    parser.add_argument("--lr-embeds", type=float, default=3e-3)
    parser.add_argument("--lr-labels", type=float, default=1e-2)
    parser.add_argument("--lr-lr", type=float, default=5e-2)
    parser.add_argument("--attention-weight", type=float, default=1.0)
    parser.add_argument("--eval-heads", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    corpus = ingest_dataset(resolve_dataset("sst2"), Path(args.data_dir)).corpus
    train, dev_rows = split_rows(corpus, "train"), split_rows(corpus, "eval")
    if args.pool:
        pick = np.sort(np.random.default_rng(0).choice(len(train["ids"]), args.pool,
                                                       replace=False))
        train = {k: ([v[i] for i in pick] if isinstance(v, list) else v[pick])
                 for k, v in train.items()}
    held = None
    if args.holdout:
        keep = np.arange(len(train["ids"]))
        held = {k: ([v[i] for i in keep[-args.holdout:]] if isinstance(v, list)
                    else v[keep[-args.holdout:]]) for k, v in train.items()}
        train = {k: ([v[i] for i in keep[:-args.holdout]] if isinstance(v, list)
                     else v[keep[:-args.holdout]]) for k, v in train.items()}
    encoder, tokenizer = load_pretrained(args.model)
    learner = FunctionalLearner(encoder.to(args.device), n_classes=2)
    real = RealData.from_texts(tokenizer, train["texts"], train["labels"], train["ids"],
                               max_length=args.max_length, batch_size=args.real_batch,
                               device=args.device)
    dev = RealData.from_texts(tokenizer, dev_rows["texts"], dev_rows["labels"], dev_rows["ids"],
                              max_length=128, device=args.device)
    holdout = None if held is None else RealData.from_texts(
        tokenizer, held["texts"], held["labels"], held["ids"], max_length=128,
        device=args.device)
    # pooled features of the pool under the pretrained encoder, once: the k-means init reads
    # them normalised, meta-matching's outer loss (when the encoder cannot move) as they are
    pooled = MetaMatching(learner, prototypes.from_noise(
        learner.word_embeddings, 2, 1, 4, 0, 1.0)).real_features(real)
    features = torch.nn.functional.normalize(pooled, dim=1).cpu().numpy()
    print(f"setup {time.perf_counter() - started:.1f}s: {len(real)} pool rows, {len(dev)} "
          f"validation rows, peak RSS {peak_rss_mb():.0f} MiB", flush=True)

    attention_modes = {"both": [False, True], "off": [False], "on": [True]}[args.attention]
    results = []
    for seed in args.seeds:
        eval_seeds = [derive_seed(seed, 99, i) for i in range(args.eval_heads)]
        for per_class in args.per_class:
            for attention in attention_modes:
                synthetic = prototypes.match_attention(prototypes.from_real(
                    features, train["labels"], train["texts"], train["ids"], tokenizer,
                    learner.word_embeddings, 2, per_class, args.seq_len, seed, args.init_lr,
                    learner.attention_shape if attention else None,
                    meta={"label_names": ["negative", "positive"]}), learner)
                inner = InnerConfig(steps=1, attention_weight=args.attention_weight,
                                    head_init=args.head_init)
                before = score(learner, synthetic, inner, eval_seeds, dev)
                before_held = (None if holdout is None
                               else score(learner, synthetic, inner, eval_seeds, holdout))
                distiller = MetaMatching(learner, synthetic, OuterConfig(
                    seed=seed, lr_embeds=args.lr_embeds, lr_labels=args.lr_labels,
                    lr_attention=args.lr_labels, lr_lr=args.lr_lr), inner)
                real.batch_size, real.seed = args.real_batch, seed  # the seed draws the batches
                if distiller.static:
                    distiller.use_features(real, pooled)
                else:
                    real.batch_size = args.attention_real_batch
                steps = (args.attention_steps or args.steps) if attention else args.steps
                times: list[float] = []
                clock = [time.perf_counter()]

                def tick(step: int, loss: float, times=times, clock=clock) -> None:
                    now = time.perf_counter()
                    times.append(now - clock[0])
                    clock[0] = now
                    if step == 1 or step % 25 == 0:
                        print(f"  step {step} loss {loss:.4f} {times[-1]:.2f}s", flush=True)

                print(f"seed {seed} per_class {per_class} attention {attention}", flush=True)
                distiller.fit(real, steps, callback=tick)
                last_head = synthetic.meta["head_seed"]
                after = score(learner, synthetic, inner, eval_seeds, dev)
                row = {
                    "seed": seed, "per_class": per_class, "attention_labels": attention,
                    "outer_steps": steps, "real_batch": real.batch_size,
                    "encoder_static": distiller.static,
                    "sec_per_step": statistics.mean(times),
                    "sec_per_step_median": statistics.median(times),
                    "loss_first": distiller.losses[0], "loss_last": distiller.losses[-1],
                    "learned_lr": float(synthetic.lr.detach()),
                    "acc_prototypes_mean": statistics.mean(before),
                    "acc_prototypes_std": statistics.pstdev(before),
                    "acc_distilled_mean": statistics.mean(after),
                    "acc_distilled_std": statistics.pstdev(after),
                    "acc_distilled_last_head": accuracy(
                        learner, embeds_finetune(learner, synthetic, inner, last_head), dev),
                    "peak_rss_mib": peak_rss_mb()}
                if holdout is not None:
                    row["holdout_prototypes"] = statistics.mean(before_held)
                    row["holdout_distilled"] = statistics.mean(
                        score(learner, synthetic, inner, eval_seeds, holdout))
                results.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "results": results}, indent=2))
    print(f"total {time.perf_counter() - started:.1f}s, peak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
