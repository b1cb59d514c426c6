"""Training and scoring steps of `sft_lora` with the output head on every position (the
model's own `model(**batch).loss`, the code before) against the head on labelled positions only
(`instruct.losses.response_loss` / `token_losses`, the code now), side by side.

Real rows (the Alpaca subset or GSM8K train, through the ordinary ingest), the real decoder
(SmolLM2-135M-Instruct offline by default), LoRA at the learner's defaults, the same batches
for both variants: each round runs every batch through one variant and then the other,
alternating which goes first. A training step is forward, backward and an AdamW step on a
fresh adapter (same seed for both), so both variants train the same weights; a scoring step is
the no-grad per-row loss of `response_losses`. It checks that both give the same losses (to
float rounding) and reports seconds per step, medians over rounds, and the ratio.

    python benchmarks/bench_sft_head.py --data-dir ../shared/datasets --dataset alpaca \
        --batches 6 --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill_core.instruct.ingest import ingest_alpaca, ingest_gsm8k
from distill_core.instruct.losses import IGNORE, response_loss, token_losses
from distill_core.instruct.rows import rows_of
from distill_core.instruct.sft import SftOptions, add_lora
from distill_core.instruct.tokens import collate, encode_rows, pad_id_of


def full_head_loss(model: Any, batch: dict[str, Any]) -> Any:
    """The code before: the model's own loss, logits at every position."""
    return model(**batch).loss


def full_head_token_losses(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """The code before for scoring: every position's logits, then the labelled ones."""
    import torch.nn.functional as F  # noqa: N812

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    scored = targets != IGNORE
    losses = torch.zeros(targets.shape, dtype=torch.float32)
    losses[scored] = F.cross_entropy(logits[:, :-1, :][scored].float(), targets[scored],
                                     reduction="none")
    return losses.sum(dim=1), scored.sum(dim=1)


def train_steps(model: Any, batches: list[dict[str, Any]], loss_of: Any,
                lr: float) -> tuple[float, list[float]]:
    """Seconds for the batches' training steps (AdamW on the adapter), and their losses."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    model.train()
    losses = []
    clock = time.perf_counter()
    for batch in batches:
        loss = loss_of(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return time.perf_counter() - clock, losses


def score_steps(model: Any, batches: list[dict[str, Any]], losses_of: Any) -> tuple[float,
                                                                                     list]:
    """Seconds for the batches' no-grad per-row losses, and the per-row sums."""
    model.eval()
    sums = []
    clock = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            total, _ = losses_of(model, batch)
            sums.extend(total.double().tolist())
    return time.perf_counter() - clock, sums


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TEXTDISTILL_DATA_DIR",
                                                             "../shared/datasets"))
    parser.add_argument("--dataset", choices=["alpaca", "gsm8k"], default="alpaca")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--batches", type=int, default=6, help="batches per round")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from distill_core.generate.models import load_causal_lm

    data_dir = Path(args.data_dir)
    corpus = (ingest_alpaca(data_dir) if args.dataset == "alpaca"
              else ingest_gsm8k(data_dir)).corpus
    pool = rows_of(corpus, "train")
    chosen = np.random.default_rng(0).permutation(len(pool))[:args.batches * args.batch_size]
    lm = load_causal_lm(args.model, device="cpu")
    encoded = encode_rows(lm.tokenizer, [pool[int(i)] for i in chosen], args.max_length)
    pad = pad_id_of(lm.tokenizer)
    batches = [collate(encoded[i:i + args.batch_size], pad)
               for i in range(0, len(encoded), args.batch_size)]
    positions = sum(int(b["input_ids"].numel()) for b in batches)
    labelled = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches)
    vocabulary = int(lm.model.config.vocab_size)
    print(f"{args.dataset}: {len(encoded)} rows in {len(batches)} batches of "
          f"{args.batch_size}; {labelled} of {positions} positions labelled "
          f"({labelled / positions:.0%}); vocabulary {vocabulary}", flush=True)

    options = SftOptions(model=args.model)
    variants = {"every position (before)": (full_head_loss, full_head_token_losses),
                "labelled only (now)": (response_loss, token_losses)}
    times: dict[str, dict[str, list[float]]] = {v: {"train": [], "score": []}
                                                for v in variants}
    results: dict[str, dict[str, list[float]]] = {}
    for round_index in range(args.rounds):
        names = list(variants) if round_index % 2 == 0 else list(variants)[::-1]
        for name in names:
            train_loss, score_loss = variants[name]
            lm = load_causal_lm(args.model, device="cpu")
            model = add_lora(lm.model, options, seed=0)
            train_s, losses = train_steps(model, batches, train_loss, options.lr)
            score_s, sums = score_steps(model, batches, score_loss)
            times[name]["train"].append(train_s / len(batches))
            times[name]["score"].append(score_s / len(batches))
            results[name] = {"train_losses": losses, "score_sums": sums}
            print(f"round {round_index} {name}: train {train_s / len(batches):.2f} s/step, "
                  f"score {score_s / len(batches):.2f} s/batch", flush=True)

    before, now = list(variants)
    train_diff = max(abs(a - b) for a, b in zip(results[before]["train_losses"],
                                                  results[now]["train_losses"], strict=True))
    score_diff = max(abs(a - b) / max(abs(a), 1e-9) for a, b in zip(
        results[before]["score_sums"], results[now]["score_sums"], strict=True))
    print(f"\nsame losses: max train-loss difference {train_diff:.2e} over "
          f"{len(batches)} steps, max relative per-row score difference {score_diff:.2e}")
    print("\n| head runs on | train s/step (median) | score s/batch (median) | train speed-up "
          "| score speed-up |\n|---|---|---|---|---|")
    summary = {}
    for name in variants:
        train = statistics.median(times[name]["train"])
        score = statistics.median(times[name]["score"])
        summary[name] = {"train_s_per_step": train, "score_s_per_batch": score,
                         "train_rounds": times[name]["train"],
                         "score_rounds": times[name]["score"]}
        base_train = statistics.median(times[before]["train"])
        base_score = statistics.median(times[before]["score"])
        print(f"| {name} | {train:.2f} | {score:.2f} | {base_train / train:.2f}x "
              f"| {base_score / score:.2f}x |")
    if args.out:
        args.out.write_text(json.dumps({
            "args": {k: str(v) for k, v in vars(args).items()}, "positions": positions,
            "labelled": labelled, "vocabulary": vocabulary, "variants": summary,
            "max_train_loss_difference": train_diff,
            "max_relative_score_difference": score_diff, "torch": torch.__version__,
            "threads": torch.get_num_threads()}, indent=2))


if __name__ == "__main__":
    main()
