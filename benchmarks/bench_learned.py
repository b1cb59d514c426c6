"""Learned distillation with real MiniLM: meta-matching at k = 1, with and without
attention labels, scored by `embeds_finetune` on the evaluation split.

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
scores on them too (training data only: what the defaults were chosen on); they are drawn
at random from the pool, whose files may be sorted by class.

`--dataset` picks any registered dataset (default `sst2`: training split →
validation; `ag_news`: the 8,000-row training subset → the official 7,600-row
test split). `--baselines random herding` also scores, under the same
`embeds_finetune` protocol, the word embeddings of real rows those selectors
pick (random: per seed; herding: deterministic, once), so the comparison with
the k-means init isolates what learning adds. `--full-finetune` trains the
project's `finetune` learner (MiniLM, its default protocol: AdamW 1e-4, 200
steps of 64, cosine, warm-up 0.5) on the whole pool and scores it on the same
split: the reference the issue's target is a fraction of.

    python benchmarks/bench_learned.py --steps 200 --per-class 1 5 --seeds 0 1 2
    python benchmarks/bench_learned.py --dataset ag_news --pool 0 --attention off \
        --per-class 1 --seeds 0 1 2 --eval-heads 1 --baselines random herding --full-finetune

On a GPU node: add `--device cuda --threads 0` (0 keeps torch's default).
"""

from __future__ import annotations

import argparse
import dataclasses
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
from distill_core.learned.functional import Params
from distill_core.learners.data import LearnerData, TrainingRows
from distill_core.learners.network import FINETUNE_LR, train_finetune
from distill_core.learners.spec import LearnerSpec
from distill_core.models.finetune import load_pretrained
from distill_core.seeds import derive_seed


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def take(rows: dict, index: np.ndarray) -> dict:
    """The rows at `index` of a `split_rows` dict (lists and arrays alike)."""
    return {k: ([v[i] for i in index] if isinstance(v, list) else v[index])
            for k, v in rows.items()}


def split_rows(corpus, split: str) -> dict:
    rows = [r for r in corpus.select(["split", "text", "label_id", "example_id"]).to_pylist()
            if r["split"] == split]
    return {"texts": [r["text"] for r in rows],
            "labels": np.asarray([r["label_id"] for r in rows]),
            "ids": [r["example_id"] for r in rows]}


class Scorer:
    """`accuracy` on fixed real rows, exact and cheap when the trained weights leave the
    encoder pretrained (zero head, no attention labels): the rows' pooled features are then
    computed once, in `accuracy`'s own batches, and only the head is applied per call."""

    def __init__(self, learner: FunctionalLearner, rows: RealData, batch_size: int = 128):
        self.learner, self.rows, self.batch_size = learner, rows, batch_size
        self.pretrained = learner.initial_params(0, "zero")
        self._pooled: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def _static(self, params: Params) -> bool:
        return all(torch.equal(value, self.pretrained[name]) for name, value in params.items()
                   if name.startswith("encoder."))

    def __call__(self, params: Params) -> float:
        if not self._static(params):
            return accuracy(self.learner, params, self.rows, self.batch_size)
        if self._pooled is None:
            with torch.no_grad():
                self._pooled = torch.cat([
                    self.learner(self.pretrained, b.attention_mask, input_ids=b.input_ids).pooled
                    for b in self.rows.batches(self.batch_size)])
        logits = torch.nn.functional.linear(self._pooled, params["head.weight"],
                                            params["head.bias"])
        return float((logits.argmax(-1).cpu() == self.rows.labels).float().mean())


def score(learner: FunctionalLearner, synthetic, inner: InnerConfig, seeds: list[int],
          dev: Scorer) -> list[float]:
    return [dev(embeds_finetune(learner, synthetic, inner, s)) for s in seeds]


def full_finetune(model: str, train: dict, dev_rows: dict, n_classes: int, steps: int | None,
                  seed: int) -> dict:
    """The project's `finetune` learner trained on every pool row, scored on the split."""
    spec = LearnerSpec(kind="finetune", model=model, **({"steps": steps} if steps else {}))
    empty = np.zeros((0, 0), dtype=np.float32)
    result = train_finetune(
        spec, TrainingRows(LearnerData(list(train["texts"]), None, empty, train["labels"])),
        LearnerData(list(dev_rows["texts"]), None, empty, dev_rows["labels"]),
        list(range(n_classes)), seed)
    return {"kind": "full_finetune", "seed": seed, "rows": len(train["labels"]),
            "protocol": dataclasses.asdict(spec.finetune_settings(seed, FINETUNE_LR)),
            "accuracy": result.accuracy, "macro_f1": result.macro_f1,
            "wall_s": result.wall_time_s, "note": result.note, "peak_rss_mib": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TEXTDISTILL_DATA_DIR",
                                                             "/work/shared/datasets"))
    parser.add_argument("--dataset", default="sst2", help="a registered dataset")
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
    parser.add_argument("--baselines", nargs="*", choices=["random", "herding"], default=[],
                        help="also score these selectors' real rows under embeds_finetune")
    parser.add_argument("--full-finetune", action="store_true",
                        help="also train the finetune learner on the whole pool")
    parser.add_argument("--full-steps", type=int, default=None,
                        help="finetune steps (default: the learner's, 200)")
    parser.add_argument("--only-full", action="store_true",
                        help="with --full-finetune: skip the distillation")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    spec = resolve_dataset(args.dataset)
    label_names, n_classes = list(spec.label_names), len(spec.label_names)
    corpus = ingest_dataset(spec, Path(args.data_dir)).corpus
    train, dev_rows = split_rows(corpus, "train"), split_rows(corpus, "eval")
    if args.pool:
        pick = np.sort(np.random.default_rng(0).choice(len(train["ids"]), args.pool,
                                                       replace=False))
        train = take(train, pick)
    held = None
    if args.holdout:  # random pool rows (some training files are sorted by class)
        order = np.random.default_rng(1).permutation(len(train["ids"]))
        out, keep = np.sort(order[:args.holdout]), np.sort(order[args.holdout:])
        held, train = take(train, out), take(train, keep)
    results = []
    if args.full_finetune:
        print(f"full fine-tune on {len(train['labels'])} rows", flush=True)
        full = full_finetune(args.model, train, dev_rows, n_classes, args.full_steps, 0)
        results.append(full)
        print(json.dumps(full), flush=True)
        if args.only_full:
            finish(args, results, started)
            return
    encoder, tokenizer = load_pretrained(args.model)
    learner = FunctionalLearner(encoder.to(args.device), n_classes=n_classes)
    real = RealData.from_texts(tokenizer, train["texts"], train["labels"], train["ids"],
                               max_length=args.max_length, batch_size=args.real_batch,
                               device=args.device)
    dev = Scorer(learner, RealData.from_texts(tokenizer, dev_rows["texts"], dev_rows["labels"],
                                              dev_rows["ids"], max_length=128,
                                              device=args.device))
    holdout = None if held is None else Scorer(learner, RealData.from_texts(
        tokenizer, held["texts"], held["labels"], held["ids"], max_length=128,
        device=args.device))
    # pooled features of the pool under the pretrained encoder, once: the k-means init reads
    # them normalised, meta-matching's outer loss (when the encoder cannot move) as they are
    pooled = MetaMatching(learner, prototypes.from_noise(
        learner.word_embeddings, n_classes, 1, 4, 0, 1.0)).real_features(real)
    features = torch.nn.functional.normalize(pooled, dim=1).cpu().numpy()
    print(f"setup {time.perf_counter() - started:.1f}s: {len(real)} pool rows, {len(dev)} "
          f"evaluation rows, {n_classes} classes, peak RSS {peak_rss_mb():.0f} MiB", flush=True)

    def initial(per_class: int, seed: int, attention: bool, init: str = "kmeans"):
        return prototypes.match_attention(prototypes.from_real(
            features, train["labels"], train["texts"], train["ids"], tokenizer,
            learner.word_embeddings, n_classes, per_class, args.seq_len, seed, args.init_lr,
            learner.attention_shape if attention else None,
            meta={"label_names": label_names}, init=init), learner)

    attention_modes = {"both": [False, True], "off": [False], "on": [True]}[args.attention]
    baseline_inner = InnerConfig(steps=1, attention_weight=args.attention_weight,
                                 head_init=args.head_init)
    for seed in args.seeds:
        eval_seeds = [derive_seed(seed, 99, i) for i in range(args.eval_heads)]
        for per_class in args.per_class:
            for init in args.baselines:
                if init == "herding" and seed != args.seeds[0]:
                    continue  # deterministic: one set whatever the seed
                accs = score(learner, initial(per_class, seed, False, init), baseline_inner,
                             eval_seeds, dev)
                row = {"kind": "baseline", "init": init, "seed": seed, "per_class": per_class,
                       "acc_mean": statistics.mean(accs), "acc_std": statistics.pstdev(accs)}
                results.append(row)
                print(json.dumps(row), flush=True)
            for attention in attention_modes:
                synthetic = initial(per_class, seed, attention)
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
                    "kind": "distilled", "seed": seed, "per_class": per_class,
                    "attention_labels": attention,
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
                    # A zero head trains the same weights whatever the head seed: the last
                    # head's score is the mean's, and a moved encoder's pass is not repeated.
                    "acc_distilled_last_head": (after[0] if inner.head_init == "zero" else dev(
                        embeds_finetune(learner, synthetic, inner, last_head))),
                    "peak_rss_mib": peak_rss_mb()}
                if holdout is not None:
                    row["holdout_prototypes"] = statistics.mean(before_held)
                    row["holdout_distilled"] = statistics.mean(
                        score(learner, synthetic, inner, eval_seeds, holdout))
                results.append(row)
                print(json.dumps(row), flush=True)
    finish(args, results, started)


def finish(args: argparse.Namespace, results: list[dict], started: float) -> None:
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "results": results}, indent=2))
    print(f"total {time.perf_counter() - started:.1f}s, peak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
