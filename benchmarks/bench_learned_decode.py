"""What learned distillation keeps when decoded back to real text (issue 15): SST-2, MiniLM.

Meta-matching (k = 1, zero head, no attention labels: the project's defaults) on a
pool of training rows, then three real-text sets of the same size per seed, each
scored two ways on the 872 validation rows:

- `prototypes`: the k-means prototypes the synthetic set starts from (= kmeans);
- `nearest_sentence`: per learned example, the pool row of its class nearest it;
- `matched_sentence`: per learned example, the pool row of its class that, in its
  place, gives the one-step learner the lowest loss on the pool (`decode.py`);
- `herding` as the selection baseline that beats kmeans on SST-2.

Scores: `learned protocol` = the one-step learner (`embeds_finetune`'s exact
protocol, zero head, learned lr and soft labels; for real rows computed from their
pooled features in closed form, `one_step_head`, which the tests check against
the inner step), next to the learned embeddings themselves; `probe` = the
project's linear probe (C = 1, hard labels) on the signals embeddings, the
learner every selection method is scored by; `finetune` (with `--finetune`) = the
project's fine-tuned MiniLM (its 200-step recipe, hard labels) on the text; `scratch`
(with `--scratch`) = the project's from-scratch transformer on the text. Setup
(the pool's features) is not in the per-seed times.

    python benchmarks/bench_learned_decode.py --per-class 1 5 --seeds 0 1 2 --out decode.json
    python benchmarks/bench_learned_decode.py --per-class 5 --seeds 0 1 2 --finetune
    python benchmarks/bench_learned_decode.py --per-class 10 --seeds 0 1 2 --finetune --scratch
    python benchmarks/bench_learned_decode.py --per-class 5 --seeds 0 1 2 --attention

`--attention` distils with attention labels; the text is decoded from the learned
embeddings by the same rules (the decoded rows carry no attention labels: a text learner
cannot use them), so it says whether what attention labels add survives decoding.

`--token-decodings` also decodes every learned set token by token, the issue's other two
ways back to text, which write new text rather than pick a pool row: `nearest_token` (the
nearest vocabulary token per position) and `decoder` (beam search over each position's
nearest tokens, scored by Σ cosine + λ · log p under SmolLM2, the pipeline's
`decode: decoder` with its default λ). Those texts are embedded by the same encoder and
scored like the real-row sets (probe; one-step protocol with hard and with the learned
soft labels); the texts themselves go in the JSON.

    python benchmarks/bench_learned_decode.py --per-class 5 --seeds 0 1 2 --token-decodings
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's code

from benchmarks.bench_learned import peak_rss_mb, split_rows, take
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
from distill_core.learned.decode import (
    decoder_regularised,
    matched_sentences,
    nearest_sentences,
    nearest_tokens,
    one_step_head,
)
from distill_core.learners.data import LearnerData, TrainingRows
from distill_core.learners.network import train_finetune, train_scratch
from distill_core.learners.probe import train_linear_probe
from distill_core.learners.spec import LearnerSpec
from distill_core.models.finetune import load_pretrained
from distill_core.synthesize.base import select_per_class


def head_accuracy(weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor,
                  labels: torch.Tensor) -> float:
    return float(((features @ weight.T + bias).argmax(-1) == labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("TEXTDISTILL_DATA_DIR",
                                                             "/work/shared/datasets"))
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--per-class", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pool", type=int, default=4000)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--real-batch", type=int, default=256)
    parser.add_argument("--shortlist", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--finetune", action="store_true",
                        help="also fine-tune the project's `finetune` learner (MiniLM, its "
                        "default 200-step recipe, hard labels) on each real-text set")
    parser.add_argument("--scratch", action="store_true",
                        help="also train the project's from-scratch transformer (`scratch`, "
                        "its default recipe, hard labels) on each real-text set")
    parser.add_argument("--attention", action="store_true",
                        help="distil with attention labels (Maekawa et al.; λ = 1, real batches "
                        "of --attention-real-batch rows through the moving encoder); the text "
                        "is decoded from the learned embeddings as without them")
    parser.add_argument("--attention-real-batch", type=int, default=64)
    parser.add_argument("--token-decodings", action="store_true",
                        help="also decode token by token (nearest_token, and decoder with "
                        "SmolLM2) and score those texts")
    parser.add_argument("--decoder-model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--decoder-weight", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    corpus = ingest_dataset(resolve_dataset("sst2"), Path(args.data_dir)).corpus
    train, dev_rows = split_rows(corpus, "train"), split_rows(corpus, "eval")
    if args.pool:  # the same seeded pool as bench_learned.py
        pick = np.sort(np.random.default_rng(0).choice(len(train["ids"]), args.pool,
                                                       replace=False))
        train = take(train, pick)
    encoder, tokenizer = load_pretrained(args.model)
    learner = FunctionalLearner(encoder.to(args.device), n_classes=2)
    real = RealData.from_texts(tokenizer, train["texts"], train["labels"], train["ids"],
                               max_length=args.max_length, batch_size=args.real_batch,
                               device=args.device)
    dev = RealData.from_texts(tokenizer, dev_rows["texts"], dev_rows["labels"], dev_rows["ids"],
                              max_length=128, device=args.device)
    probe_net = MetaMatching(learner, prototypes.from_noise(learner.word_embeddings, 2, 1, 4, 0,
                                                            1.0))
    pooled = probe_net.real_features(real).cpu()  # the head's inputs
    dev_pooled = learner.pooled(dev.attention_mask, input_ids=dev.input_ids,
                                normalize=False).cpu()
    features = torch.nn.functional.normalize(pooled, dim=1).numpy()
    dev_features = torch.nn.functional.normalize(dev_pooled, dim=1).numpy()
    labels = torch.as_tensor(train["labels"])
    dev_labels = torch.as_tensor(dev_rows["labels"])
    probe = LearnerSpec(kind="linear_probe", C=1.0, max_iter=1000)
    print(f"setup {time.perf_counter() - started:.1f}s: {len(real)} pool rows", flush=True)

    def probe_accuracy(rows: list[int], seed: int) -> float:
        return train_linear_probe(
            probe, TrainingRows(LearnerData([], None, features[rows], train["labels"][rows])),
            LearnerData([], None, dev_features, dev_rows["labels"]), [0, 1], seed).accuracy

    def protocol_accuracy(rows: list[int], soft: torch.Tensor, lr: torch.Tensor) -> float:
        weight, bias = one_step_head(pooled[rows], soft, lr)
        return head_accuracy(weight, bias, dev_pooled, dev_labels)

    empty = np.zeros((0, 0), dtype=np.float32)
    text_learners = {"finetune": (train_finetune, LearnerSpec(kind="finetune", model=args.model)),
                     "scratch": (train_scratch, LearnerSpec(kind="scratch", model=args.model))}

    def text_accuracy(learner_kind: str, rows: list[int], seed: int) -> float:
        train_fn, spec = text_learners[learner_kind]
        return train_fn(
            spec, TrainingRows(LearnerData([train["texts"][i] for i in rows], None, empty,
                                               train["labels"][rows])),
            LearnerData(list(dev_rows["texts"]), None, empty, dev_rows["labels"]), [0, 1],
            seed).accuracy

    lm = None
    if args.token_decodings:
        from distill_core.generate.models import load_causal_lm

        lm = load_causal_lm(args.decoder_model, device=args.device)

    def written_texts(synthetic, soft: torch.Tensor, lr: torch.Tensor) -> dict:
        """Token-by-token decodings of the learned set, embedded and scored (new text, so
        not rows of the pool: their features come from the same encoder here)."""
        embeds, mask = synthetic.embeds.detach(), synthetic.mask
        y = synthetic.labels.cpu()
        out = {}
        for name in ("nearest_token", "decoder"):
            clock = time.perf_counter()
            decoded = (nearest_tokens(embeds, mask, learner.word_embeddings, tokenizer)
                       if name == "nearest_token" else
                       decoder_regularised(embeds, mask, learner.word_embeddings, tokenizer,
                                           lm.model, lm.tokenizer, weight=args.decoder_weight))
            out[f"{name}_s"] = round(time.perf_counter() - clock, 1)
            texts = [d.text for d in decoded]
            rows = RealData.from_texts(tokenizer, texts, y.tolist(), [str(i) for i in
                                       range(len(texts))], max_length=args.max_length,
                                       device=args.device)
            x = learner.pooled(rows.attention_mask, input_ids=rows.input_ids,
                               normalize=False).cpu()
            out[f"{name}_probe"] = train_linear_probe(
                probe, TrainingRows(LearnerData([], None, torch.nn.functional.normalize(
                    x, dim=1).numpy(), y.numpy())),
                LearnerData([], None, dev_features, dev_rows["labels"]), [0, 1], 0).accuracy
            out[f"{name}_hard_step"] = head_accuracy(
                *one_step_head(x, torch.nn.functional.one_hot(y, 2).float(), lr),
                dev_pooled, dev_labels)
            out[f"{name}_learned_step"] = head_accuracy(*one_step_head(x, soft, lr),
                                                        dev_pooled, dev_labels)
            out[f"{name}_texts"] = texts
        return out

    index = {e: i for i, e in enumerate(train["ids"])}
    results = []
    for seed in args.seeds:
        for per_class in args.per_class:
            synthetic = prototypes.from_real(
                features, train["labels"], train["texts"], train["ids"], tokenizer,
                learner.word_embeddings, 2, per_class, args.seq_len, seed, 1.0,
                learner.attention_shape if args.attention else None,
                meta={"label_names": ["negative", "positive"]})
            if args.attention:  # start at the encoder's own attention: zero KL at step 0
                synthetic = prototypes.match_attention(synthetic, learner)
            prototype_rows = [index[p[0]] for p in synthetic.parent_ids]
            inner = InnerConfig(steps=1, head_init="zero")
            distiller = MetaMatching(learner, synthetic, OuterConfig(seed=seed), inner)
            real.batch_size, real.seed = args.real_batch, seed
            if distiller.static:
                distiller.use_features(real, pooled.to(args.device))
            else:  # attention labels move the encoder: each real row goes through it
                real.batch_size = args.attention_real_batch
            clock = time.perf_counter()
            distiller.fit(real, args.steps)
            fit_s = time.perf_counter() - clock
            soft, lr = synthetic.soft_labels().detach().cpu(), synthetic.lr.detach().cpu()
            syn_pooled = learner.pooled(synthetic.mask, inputs_embeds=synthetic.embeds.detach(),
                                        normalize=False).cpu()
            clock = time.perf_counter()
            nearest = [index[d.source_id] for d in nearest_sentences(
                syn_pooled, synthetic.labels.cpu(), pooled, labels, train["ids"],
                train["texts"])]
            nearest_s = time.perf_counter() - clock
            clock = time.perf_counter()
            matched = [index[d.source_id] for d in matched_sentences(
                syn_pooled, synthetic.labels.cpu(), soft, lr, pooled, labels, train["ids"],
                train["texts"], shortlist=args.shortlist)]
            matched_s = time.perf_counter() - clock
            herding = select_per_class("herding", features, train["labels"], per_class,
                                       seed).indices.tolist()
            hard = torch.nn.functional.one_hot(labels[prototype_rows], 2).float()
            row = {"seed": seed, "per_class": per_class, "outer_steps": args.steps,
                   "attention_labels": args.attention,
                   "fit_s": round(fit_s, 1), "nearest_s": round(nearest_s, 2),
                   "matched_s": round(matched_s, 2), "learned_lr": float(lr),
                   "embeddings": accuracy(learner, embeds_finetune(learner, synthetic, inner,
                                                                   0), dev),
                   "nearest_is_prototype": sum(a == b for a, b in zip(nearest, prototype_rows,
                                                                      strict=True)),
                   "matched_is_prototype": sum(a == b for a, b in zip(matched, prototype_rows,
                                                                      strict=True)),
                   "rows": per_class * 2, "matched_distinct": len(set(matched)),
                   "nearest_distinct": len(set(nearest)), "peak_rss_mib": round(peak_rss_mb())}
            for name, rows in (("prototypes", prototype_rows), ("nearest", nearest),
                               ("matched", matched), ("herding", herding)):
                row[f"{name}_probe"] = probe_accuracy(rows, seed)
                row[f"{name}_hard_step"] = protocol_accuracy(
                    rows, torch.nn.functional.one_hot(labels[rows], 2).float(), lr)
                if name in ("nearest", "matched"):
                    row[f"{name}_learned_step"] = protocol_accuracy(rows, soft, lr)
            for kind in [k for k in ("finetune", "scratch") if getattr(args, k)]:
                for name, rows in (("prototypes", prototype_rows), ("matched", matched),
                                   ("herding", herding)):
                    row[f"{name}_{kind}"] = text_accuracy(kind, rows, seed)
            if args.token_decodings:
                row.update(written_texts(synthetic, soft, lr))
            row["prototypes_learned_step_init"] = protocol_accuracy(
                prototype_rows, hard * 0.9 + 0.05, torch.tensor(1.0))
            results.append(row)
            print(json.dumps(row), flush=True)
    summary = {}
    for per_class in args.per_class:
        rows = [r for r in results if r["per_class"] == per_class]
        summary[per_class] = {k: (round(100 * statistics.mean(r[k] for r in rows), 1),
                                  round(100 * statistics.stdev(r[k] for r in rows), 1)
                                  if len(rows) > 1 else 0.0)
                              for k in rows[0] if k.endswith(("probe", "step", "embeddings",
                                                              "step_init", "finetune", "scratch"))}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "results": results, "summary": summary}, indent=2))
    print(f"total {time.perf_counter() - started:.1f}s, peak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
