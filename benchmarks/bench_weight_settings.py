"""Learned per-example weights' settings (`synthesize.weights`: max_ratio, steps, demand_rows)
compared on training holdouts, the picks of herding and of the default `bilevel` computed
once per pool, budget and seed and weighted under each setting.

Protocol as `bench_probe_refine.py --protocol holdout` (a stratified, seeded fifth of each
finished run's pool held out; the methods distil the rest; the linear probe, C = 1, hard
labels, trained on each set with its weights scores the held-out rows).

    python benchmarks/bench_weight_settings.py RUNS/pool-a RUNS/pool-b --budgets 5 10 20 \
        --seeds 0 1 2 --settings 16,30,4000 4,30,4000 64,30,4000 --out weights.jsonl

Prints per setting the mean accuracy gain over the unweighted sets, wins and losses over
every pool x budget x method cell.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's code

from benchmarks.bench_probe_refine import (  # noqa: E402
    picks_of,
    pool_and_eval,
    stratified_holdout,
)
from distill_core.evaluate.linear_probe import linear_probe  # noqa: E402
from distill_core.synthesize.base import ClassData, select_per_class  # noqa: E402
from distill_core.synthesize.learned_weights import WeightSettings, weigh_picks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished run folders")
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=["16,30,4000"],
                        metavar="RATIO,STEPS,DEMAND")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines, one per set")
    args = parser.parse_args()
    settings = {s: WeightSettings(demand_rows=int(s.split(",")[2]),
                                  max_ratio=float(s.split(",")[0]), steps=int(s.split(",")[1]))
                for s in args.settings}
    gains: dict[str, list[float]] = {s: [] for s in settings}
    for run in args.runs:
        x, y, eval_x, eval_y = pool_and_eval(run)
        train, test = stratified_holdout(y)
        x, y, eval_x, eval_y = x[train], y[train], x[test], y[test]
        labels = sorted(set(y.tolist()))

        def score(rows, weights=None, x=x, y=y, eval_x=eval_x, eval_y=eval_y,  # noqa: ANN001, ANN202
                  labels=labels):
            return 100 * linear_probe(x[rows], y[rows], eval_x, eval_y, labels,
                                      sample_weight=weights).accuracy

        for budget in args.budgets:
            for seed in args.seeds:
                for method in ("herding", "bilevel"):
                    rows = picks_of(select_per_class(method, ClassData(x), y, budget, seed),
                                    budget)
                    plain = score(rows)
                    for name, setting in settings.items():
                        start = time.perf_counter()
                        weights = weigh_picks(x, y, rows, seed, setting)
                        seconds = time.perf_counter() - start
                        accuracy = score(rows, weights)
                        gains[name].append(accuracy - plain)
                        if args.out:
                            with args.out.open("a") as handle:
                                handle.write(json.dumps({
                                    "run": run.name, "budget": budget, "seed": seed,
                                    "method": method, "setting": name, "plain": plain,
                                    "weighted": accuracy, "seconds": round(seconds, 3)}) + "\n")
            print(f"{run.name} {budget}/class done", flush=True)
    for name, values in gains.items():
        print(f"{name}: mean gain {statistics.mean(values):+.2f} points over {len(values)} sets, "
              f"{sum(v > 0 for v in values)} up, {sum(v < 0 for v in values)} down", flush=True)


if __name__ == "__main__":
    main()
