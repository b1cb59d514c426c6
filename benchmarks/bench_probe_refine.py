"""`bilevel` with the linear probe itself in the loop (`bilevel.probe_passes`) against plain
`bilevel`, herding and k-means, on the pools of finished runs.

Each run folder gives its training pool (the `clean` stage: the rows selection draws from,
after the corpus filters) and features (`signals`, read and checked against their
manifests). Two protocols:

- `holdout` (what choices are made on): a stratified, seeded fifth of the pool is held out,
  the methods distil the rest, and the probe trained on each set is scored on the held-out
  rows; `full` is the probe on the whole rest;
- `eval`: the methods distil the whole pool, scored on the run's evaluation split.

Every set is scored by the evaluation's linear probe (scikit-learn logistic regression,
C = 1, hard labels). `--plain-ce` adds the refinement scored by plain cross-entropy
(`ProbeInLoop.loss` without its temperature), the variant the module doc warns about.

    python benchmarks/bench_probe_refine.py RUNS/pool-a RUNS/pool-b --protocol holdout \
        --budgets 5 10 20 --seeds 0 1 2 --out probe_refine.jsonl [--more-settings 4x32] \
        [--params demand_rows=16000 candidate_rows=16000,demand_rows=16000]

`--weights` adds, for herding and the default `bilevel+probe`, the same rows with learned
per-example weights as the pipeline learns them (`synthesize/learned_weights.py`'s
`weigh_picks`: a seeded sample of `--weight-rows` pool rows apart from bilevel's), scored by
the probe trained with those weights.

`--labels` adds, for the same two, the rows with learned soft labels as the pipeline learns
them (`synthesize/learned_labels.py`'s `label_picks`: the target fitted on a seeded sample of
`--label-rows` pool rows), scored by the soft-label probe (C = 1, temperature 1) trained on
them.

`--pursuit` adds `span_pursuit` (`synthesize/span_pursuit.py`: the rows whose span holds the
pool's probe), on hard labels and, with `--labels`, with learned soft labels.

`--more-settings PASSESxSHORTLIST` adds the refinement at other passes and shortlist;
`--params k=v[,k=v]` adds `bilevel` at the default refinement with other `bilevel` options.

Prints per run and budget mean ± std of each method and the gap closed by each
`bilevel` variant: (method − max(kmeans, herding)) / (full − max(kmeans, herding)).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's code

from distill_core.artifacts.store import RunStore  # noqa: E402
from distill_core.evaluate.linear_probe import linear_probe  # noqa: E402
from distill_core.evaluate.soft_probe import soft_label_probe  # noqa: E402
from distill_core.signals.embeddings import features  # noqa: E402
from distill_core.synthesize import probe_refine  # noqa: E402
from distill_core.synthesize.base import ClassData, select_per_class  # noqa: E402
from distill_core.synthesize.learned_labels import LabelSettings, label_picks  # noqa: E402
from distill_core.synthesize.learned_weights import WeightSettings, weigh_picks  # noqa: E402

HOLDOUT_SEED = 20_261_201


def pool_and_eval(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pool features, pool labels, evaluation features, evaluation labels) of a run."""
    store = RunStore(run.parent, run.name)
    signals = store.read("signals")
    position = {e: i for i, e in enumerate(signals.column("example_id").to_pylist())}
    matrix = features(signals)
    pool = store.read("clean", columns=["example_id", "split", "label_id"])
    pool = pool.filter(pc.equal(pool.column("split"), "train"))
    corpus = store.read("ingest", columns=["example_id", "split", "label_id"])
    held = corpus.filter(pc.not_equal(corpus.column("split"), "train"))

    def rows(table):  # noqa: ANN001, ANN202
        ids = table.column("example_id").to_pylist()
        return (matrix[[position[e] for e in ids]].astype(np.float32),
                table.column("label_id").to_numpy().astype(np.int64))

    return (*rows(pool), *rows(held))


def stratified_holdout(y: np.ndarray, fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(HOLDOUT_SEED)
    held = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        held.append(rng.choice(members, size=max(1, round(fraction * len(members))),
                               replace=False))
    held_out = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(y)), held_out), held_out


class PlainLoss(probe_refine.ProbeInLoop):
    """The refinement's probe scored by plain cross-entropy (temperature 1)."""

    def loss(self, model) -> float:  # noqa: ANN001
        p = self.probabilities(model, self.demand_x)
        return float(-np.log(np.clip(p[np.arange(len(self.demand_y)), self.demand_y],
                                     1e-12, None)).mean())


def picks_of(selection, budget: int) -> np.ndarray:  # noqa: ANN001
    return selection.indices[selection.ranks < budget]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished run folders")
    parser.add_argument("--protocol", choices=["holdout", "eval"], default="holdout")
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--probe-passes", type=int, default=2)
    parser.add_argument("--probe-shortlist", type=int, default=8)
    parser.add_argument("--more-settings", nargs="*", default=[], metavar="PASSESxSHORTLIST",
                        help="further probe settings to compare, e.g. 4x32 (each a variant "
                             "'bilevel+probe PxS')")
    parser.add_argument("--params", nargs="*", default=[], metavar="K=V[,K=V]",
                        help="bilevel options of an added variant (numbers)")
    parser.add_argument("--plain-ce", action="store_true")
    parser.add_argument("--skip-bilevel", action="store_true",
                        help="leave bilevel out (e.g. to add --pursuit to an earlier run)")
    parser.add_argument("--weights", action="store_true",
                        help="add herding and bilevel+probe with learned per-example weights")
    parser.add_argument("--weight-rows", type=int, default=4000)
    parser.add_argument("--weight-ratio", type=float, default=16.0)
    parser.add_argument("--weight-steps", type=int, default=30)
    parser.add_argument("--labels", action="store_true",
                        help="add herding and bilevel+probe with learned soft labels")
    parser.add_argument("--label-rows", type=int, default=20_000)
    parser.add_argument("--pursuit", action="store_true",
                        help="add span_pursuit (with --labels: also with learned soft labels)")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines, one per set")
    args = parser.parse_args()

    for run in args.runs:
        x, y, eval_x, eval_y = pool_and_eval(run)
        if args.protocol == "holdout":
            train, test = stratified_holdout(y)
            x, y, eval_x, eval_y = x[train], y[train], x[test], y[test]
        labels = sorted(set(y.tolist()))
        scores: dict[tuple[int, str], list[float]] = {}

        def score(rows: np.ndarray, weights: np.ndarray | None = None,  # noqa: ANN001
                  soft: np.ndarray | None = None, x=x, y=y, eval_x=eval_x, eval_y=eval_y,
                  labels=labels) -> float:
            if soft is not None:
                return 100 * soft_label_probe(x[rows], soft, eval_x, eval_y, labels,
                                              1.0, 1.0).accuracy
            return 100 * linear_probe(x[rows], y[rows], eval_x, eval_y, labels,
                                      sample_weight=weights).accuracy

        full = score(np.arange(len(y)))
        print(f"{run.name} ({args.protocol}): {len(y)} pool rows, {len(eval_y)} scored, "
              f"full {full:.1f}", flush=True)
        for budget in args.budgets:
            for seed in args.seeds:
                found: dict[str, tuple[np.ndarray, float]] = {}
                weighted: dict[str, np.ndarray] = {}
                labelled: dict[str, np.ndarray] = {}
                for method in ("kmeans", "herding"):
                    start = time.perf_counter()
                    sel = select_per_class(method, ClassData(x), y, budget, seed)
                    found[method] = (picks_of(sel, budget), time.perf_counter() - start)
                variants = {"bilevel": {"probe_passes": 0}, "bilevel+probe": {
                    "probe_passes": args.probe_passes, "probe_shortlist": args.probe_shortlist}}
                for setting in args.params:
                    options = dict(item.split("=") for item in setting.split(","))
                    variants[f"bilevel+probe {setting}"] = {
                        **variants["bilevel+probe"],
                        **{k: (float(v) if "." in v else int(v)) for k, v in options.items()}}
                for setting in args.more_settings:
                    passes, shortlist = (int(v) for v in setting.split("x"))
                    variants[f"bilevel+probe {setting}"] = {"probe_passes": passes,
                                                            "probe_shortlist": shortlist}
                for name, params in variants.items():
                    if args.skip_bilevel:
                        break
                    start = time.perf_counter()
                    sel = select_per_class("bilevel", ClassData(x), y, budget, seed, params)
                    found[name] = (picks_of(sel, budget), time.perf_counter() - start)
                if args.pursuit:
                    start = time.perf_counter()
                    sel = select_per_class("span_pursuit", ClassData(x), y, budget, seed)
                    found["span_pursuit"] = (picks_of(sel, budget), time.perf_counter() - start)
                if args.plain_ce:
                    original = probe_refine.ProbeInLoop
                    probe_refine.ProbeInLoop = PlainLoss  # type: ignore[misc]
                    try:
                        start = time.perf_counter()
                        sel = select_per_class("bilevel", ClassData(x), y, budget, seed,
                                               variants["bilevel+probe"])
                        found["bilevel+probe, plain CE"] = (picks_of(sel, budget),
                                                            time.perf_counter() - start)
                    finally:
                        probe_refine.ProbeInLoop = original  # type: ignore[misc]
                if args.weights:
                    settings = WeightSettings(args.weight_rows, args.weight_ratio,
                                              args.weight_steps, c=1.0)
                    for method in ("herding", "bilevel+probe"):
                        if method not in found:
                            continue
                        rows = found[method][0]
                        start = time.perf_counter()
                        weighted[f"{method}+w"] = weigh_picks(x, y, rows, seed, settings)
                        found[f"{method}+w"] = (rows, time.perf_counter() - start)
                if args.labels:
                    label_settings = LabelSettings(args.label_rows, c=1.0, temperature=1.0)
                    for method in ("herding", "bilevel+probe", "span_pursuit"):
                        if method not in found:
                            continue
                        rows = found[method][0]
                        start = time.perf_counter()
                        labelled[f"{method}+L"] = label_picks(x, y, rows, seed, label_settings,
                                                              len(labels))
                        found[f"{method}+L"] = (rows, time.perf_counter() - start)
                for method, (rows, seconds) in found.items():
                    accuracy = score(rows, weighted.get(method), labelled.get(method))
                    scores.setdefault((budget, method), []).append(accuracy)
                    if args.out:
                        with args.out.open("a") as handle:
                            handle.write(json.dumps({
                                "run": run.name, "protocol": args.protocol, "budget": budget,
                                "seed": seed, "method": method, "accuracy": accuracy,
                                "seconds": round(seconds, 2), "full": full}) + "\n")
            line = [f"{run.name} {budget}/class:"]
            base = max(statistics.mean(scores[(budget, m)]) for m in ("kmeans", "herding"))
            for (b, method), values in scores.items():
                if b != budget:
                    continue
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                gap = ""
                if (method.startswith(("bilevel", "span_pursuit"))
                        or method.endswith(("+w", "+L"))
                        and full > base):
                    gap = f" (gap {100 * (statistics.mean(values) - base) / (full - base):+.0f} %)"
                line.append(f"{method} {statistics.mean(values):.1f} ± {spread:.1f}{gap}")
            print("  ".join(line), flush=True)


if __name__ == "__main__":
    main()
