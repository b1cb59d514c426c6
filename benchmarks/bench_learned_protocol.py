"""Which `embeds_finetune` protocol a learned run's tensors are scored under: the one-step
protocol the families shared before, against replaying the synthetic steps along the whole
expert trajectory that trajectory matching fits them to.

Trajectory matching (`learned_trajectory`) fits its synthetic set so that `inner_steps`
steps from an expert checkpoint land `expert_span` checkpoints further on; the experts start
at the pretrained encoder with a random head. A learner trained on that set "for real"
therefore starts where the experts start and takes as many synthetic steps as it takes to
cover the trajectory: `inner_steps x ceil(expert_checkpoints / expert_span)` steps. Until
`distill_core/methods/learned_protocol.py`, every family was scored by `inner_steps` steps
from the run's `head_init` (zero by default), the meta-matching protocol; `embeds_finetune` now
replays trajectory matching's steps from that head (`trajectory_zero` below).

This reads a finished learned run (its `learn` stage: every replicate's synthetic set, the
protocol options) and scores each replicate's set under:

- `one_step`: the shared protocol before (`inner_steps` from `head_init`);
- `trajectory`: the replay from random heads (where the experts start);
- `trajectory_zero`: the replay from a zero head (`embeds_finetune`'s protocol now);

and each expert trajectory's last checkpoint (what the replay aims at: its ceiling), on
held-out training rows (`--heldout-dataset`: a registered dataset whose training rows
are not in the run's corpus; content-hashed ids tell them apart; `--heldout` of them drawn
at random, seeded) and on the run's evaluation split. Random heads: `--heads` seeds,
mean reported.

    python benchmarks/bench_learned_protocol.py RUNS/fam-learned_trajectory-<id> \
        --heldout-dataset sst2 --heldout 2000 --data-dir ../shared/datasets
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's code

from distill_core.artifacts.store import RunStore
from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.learned.experts import MANIFEST as EXPERTS_MANIFEST
from distill_core.learned.experts import cached_experts, load_checkpoint
from distill_core.learned.inner import InnerConfig
from distill_core.learned.job import load_learner
from distill_core.learned.learner import accuracy, embeds_finetune
from distill_core.learned.real import RealData
from distill_core.learners.embeds import LearnedSource
from distill_core.methods.learned_protocol import TRAJECTORY, evaluation_steps


def split_rows(corpus, split: str) -> tuple[list[str], np.ndarray, list[str]]:
    rows = [r for r in corpus.select(["split", "text", "label_id", "example_id"]).to_pylist()
            if r["split"] == split]
    return ([r["text"] for r in rows], np.asarray([r["label_id"] for r in rows]),
            [r["example_id"] for r in rows])


def protocols(options: dict, family: str) -> dict[str, InnerConfig]:
    """The protocols compared (the replays only for trajectory matching; their step count is
    `embeds_finetune`'s own, `learned_protocol.evaluation_steps`)."""
    steps, weight = options["inner_steps"], options["attention_weight"]
    out = {"one_step": InnerConfig(steps, weight, options.get("head_init", "zero"))}
    if family == TRAJECTORY:
        replay = evaluation_steps(family, options)
        out["trajectory"] = InnerConfig(replay, weight, "random")
        out["trajectory_zero"] = InnerConfig(replay, weight, "zero")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished learned run's folder")
    parser.add_argument("--heldout-dataset", default=None)
    parser.add_argument("--heldout", type=int, default=2000)
    parser.add_argument("--data-dir", default=os.environ.get("TEXTDISTILL_DATA_DIR"))
    parser.add_argument("--heads", type=int, default=3, help="random head seeds per set")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--protocols", nargs="+", default=None,
                        help="score only these (one_step, trajectory, trajectory_zero, expert)")
    parser.add_argument("--no-eval-split", action="store_true",
                        help="score the held-out training rows only")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines, one per score")
    args = parser.parse_args()
    wanted = set(args.protocols or ["one_step", "trajectory", "trajectory_zero", "expert"])
    if args.threads:
        torch.set_num_threads(args.threads)

    store = RunStore(args.run.parent, args.run.name)
    source = LearnedSource.from_store(store)
    if source is None:
        raise SystemExit(f"{args.run}: no learn stage")
    manifest = store.manifest("learn") or {}
    options = manifest["stage_config"]["options"]
    family = manifest["family"]
    corpus = store.read("ingest")
    n_classes = len(set(split_rows(corpus, "train")[1].tolist()))
    learner, tokenizer = load_learner(source.protocol["model"], n_classes,
                                      source.protocol["pooling"],
                                      source.protocol["last_layers"], "cpu")
    splits: dict[str, RealData] = {}
    if not args.no_eval_split:
        texts, labels, ids = split_rows(corpus, "eval")
        splits["eval split"] = RealData.from_texts(tokenizer, texts, labels, ids,
                                                   max_length=options["max_length"])
    if args.heldout_dataset:
        full = ingest_dataset(resolve_dataset(args.heldout_dataset),
                              Path(args.data_dir)).corpus
        seen = set(corpus.column("example_id").to_pylist())
        texts, labels, ids = split_rows(full, "train")
        free = [i for i, e in enumerate(ids) if e not in seen]
        pick = np.sort(np.random.default_rng(0).choice(len(free), size=min(args.heldout,
                                                                            len(free)),
                                                       replace=False))
        rows = [free[i] for i in pick]
        splits["held-out train"] = RealData.from_texts(
            tokenizer, [texts[i] for i in rows], labels[rows], [ids[i] for i in rows],
            max_length=options["max_length"])
        print(f"held-out training rows: {len(rows)} of {len(free)} not in the run's corpus",
              flush=True)

    results = []
    out = args.out.open("w") if args.out else None

    def keep(row: dict) -> None:
        results.append(row)
        print(json.dumps(row), flush=True)
        if out is not None:
            out.write(json.dumps(row) + "\n")
            out.flush()

    notes = {n["seed"]: n for n in manifest.get("replicates") or []}
    for replicate, seed in enumerate(manifest.get("seeds") or sorted(notes)):
        if "expert" not in wanted:
            break
        for folder in (notes.get(seed) or {}).get("experts") or []:
            key = json.loads((Path(folder) / EXPERTS_MANIFEST).read_text())["key"]
            files = cached_experts(Path(folder), key)  # checked against its manifest
            if files is None:
                raise SystemExit(f"{folder}: the expert's checkpoints do not match its manifest")
            last = load_checkpoint(files[-1])
            for split, real in splits.items():
                row = {"replicate": replicate, "protocol": "expert (last checkpoint)",
                       "steps": None, "head": "random", "split": split,
                       "accuracy": 100 * accuracy(learner, last, real), "expert": folder}
                keep(row)
    for replicate in sorted(source.sets):
        learned = source.rows_for(replicate, source.decoded_ids[replicate])
        assert learned is not None
        synthetic = learned.synthetic
        for name, inner in protocols(options, family).items():
            if name not in wanted:
                continue
            heads = [replicate] if inner.head_init == "zero" else list(range(args.heads))
            for split, real in splits.items():
                scores = [accuracy(learner, embeds_finetune(learner, synthetic, inner, h), real)
                          for h in heads]
                row = {"replicate": replicate, "protocol": name, "steps": inner.steps,
                       "head": inner.head_init, "split": split,
                       "accuracy": 100 * statistics.mean(scores),
                       "heads": [round(100 * s, 2) for s in scores],
                       "lr": float(synthetic.lr.detach())}
                keep(row)
    print("\n| protocol | steps | head | split | accuracy % (mean ± std over replicates) |")
    print("|---|---|---|---|---|")
    keys = sorted({(r["protocol"], r["steps"], r["head"], r["split"]) for r in results},
                  key=lambda k: (k[3], k[0]))
    for key in keys:
        values = [r["accuracy"] for r in results
                  if (r["protocol"], r["steps"], r["head"], r["split"]) == key]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | "
              f"{statistics.mean(values):.1f} ± {spread:.1f} |")


if __name__ == "__main__":
    main()
