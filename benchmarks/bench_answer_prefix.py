"""llm_synth's answer start: a prompt ending in "- " against one ending in "-", side by side.

Byte-level BPE tokenises " word" as one token, so a prompt that ends in "- " leaves
a lone space token where no training text has one; the model then tends to write
empty "- " lines, numbering or prose. This samples the same few-shot prompts
(llm_synth's, from random real rows of one class each, read through the ordinary
ingest path) under the same seeds with either ending, accounts for the answers
exactly as the generate stage does (`answer_lines`: a last line cut by the token
limit is `truncated`, a line seen before is a repeat), and counts usable lines
and every reject reason.

    TEXTDISTILL_DATA_DIR=../shared/datasets python -m benchmarks.bench_answer_prefix \\
        [--datasets sst2,ag_news] [--prompts 24] [--seeds 0,1] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.config import GenerateSection
from distill_core.generate.candidates import answer_lines
from distill_core.generate.models import load_causal_lm
from distill_core.generate.plan import PromptInfo, PromptPlan
from distill_core.generate.prompts import answer_list, few_shot_messages, parse_generation
from distill_core.generate.sampling import SamplingSettings, render_prompts, sample
from distill_core.ingest.ingest import data_dir_from, ingest_dataset, resolve_dataset
from distill_core.seeds import derive_seed

# The old ending, and how the old code read an answer back: "- " + continuation.
ENDINGS = {"'- ' (before)": ("- ", lambda text: "- " + text),
           "'-' (now)": ("-", answer_list)}


def few_shot_prompts(dataset: str, n: int, shots: int, seed: int, tokenizer
                     ) -> tuple[list[str], PromptPlan, list[str]]:
    """`n` llm_synth prompts (classes in turn), their plan (label, shown examples), and the
    label names."""
    corpus = ingest_dataset(resolve_dataset(dataset), data_dir_from(None)).corpus
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    texts = np.array(train.column("text").to_pylist(), dtype=object)
    labels = np.array(train.column("label").to_pylist(), dtype=object)
    names = sorted(set(labels.tolist()))
    rng = np.random.default_rng(seed)
    messages, plan = [], PromptPlan()
    for i in range(n):
        label = names[i % len(names)]
        rows = rng.choice(np.flatnonzero(labels == label), shots, replace=False)
        shown = [str(texts[r]) for r in rows]
        messages.append(few_shot_messages(label, shown, 3))
        plan.info[f"p{i}"] = PromptInfo(0, i % len(names), i, [], shown)
    prompts = render_prompts(tokenizer, messages)
    plan.prompt_ids, plan.prompts = list(plan.info), prompts
    return prompts, plan, names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--datasets", default="sst2,ag_news")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--max-new-tokens", type=int, default=GenerateSection().max_new_tokens)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    lm = load_causal_lm(args.model, device="cpu")
    settings = SamplingSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    section = GenerateSection(max_new_tokens=args.max_new_tokens)
    results = []
    for dataset in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            prompts, plan, names = few_shot_prompts(dataset, args.prompts, args.shots, seed,
                                                    lm.tokenizer)
            seeds = [derive_seed(seed, i) for i in range(len(prompts))]
            for ending, (suffix, read_back) in ENDINGS.items():
                start = time.perf_counter()
                answers = sample(lm, [p + suffix for p in prompts], seeds, settings)
                table = pa.Table.from_pylist([
                    {"prompt_id": pid, "sample": 0, "seed": s, "shard": 0, "worker": "local",
                     "text": a.text, "new_tokens": a.new_tokens}
                    for pid, s, a in zip(plan.prompt_ids, seeds, answers, strict=True)])
                rows, rejects = answer_lines(
                    table, plan, "llm_synth", names, section,
                    lambda text, info, label_names, read_back=read_back: parse_generation(
                        read_back(text), info.example_texts, section.min_words,
                        section.max_words, label_names), multi_line=True)
                reasons = Counter(r["reason"] for r in rejects)
                results.append({"dataset": dataset, "seed": seed, "ending": ending,
                                "prompts": len(prompts), "usable": len(rows),
                                "rejected": dict(reasons.most_common()),
                                "new_tokens": sum(a.new_tokens for a in answers),
                                "seconds": round(time.perf_counter() - start, 1),
                                "answers": [a.text for a in answers]})
                print(json.dumps({k: v for k, v in results[-1].items() if k != "answers"}),
                      flush=True)
    print("\n| dataset | ending | usable lines per prompt (per seed) | mean | "
          "top reject reasons (all seeds) |\n|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        for ending in ENDINGS:
            cells = [r for r in results if r["dataset"] == dataset and r["ending"] == ending]
            per_seed = [r["usable"] / r["prompts"] for r in cells]
            reasons = sum((Counter(r["rejected"]) for r in cells), Counter())
            print(f"| {dataset} | {ending} | {', '.join(f'{v:.2f}' for v in per_seed)} | "
                  f"{np.mean(per_seed):.2f} | "
                  f"{', '.join(f'{k} {v}' for k, v in reasons.most_common(4))} |")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
