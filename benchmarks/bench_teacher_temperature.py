"""Issue 14's "teacher's soft labels with the temperature chosen on a held-out part of the
training split": which `teacher.temperature` makes the teacher's soft labels best for the
soft-label probe, measured on training rows only.

On the pool of each finished run (its `clean` stage and `signals`, read as
`bench_probe_refine.py` reads them; `--cap` a seeded sample): a stratified, seeded fifth is
held out, the teacher (the pipeline's linear-probe teacher, `fit_teacher` at C = 1) is fitted
on the rest, and kmeans' and herding's sets of the rest at each budget and seed are scored on
the held-out rows by the linear probe on their hard labels and by the soft-label probe
(C = 1) on the teacher's soft labels softmax(logits / T), trained at the same T, as the
evaluation does.

    python benchmarks/bench_teacher_temperature.py RUNS/pool-a [RUNS/pool-b ...] --cap 12000

Prints per run, method and budget the mean accuracy over the seeds for the hard labels and
each T, and at the end each T's mean rank over every run x method x budget cell.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's code

from benchmarks.bench_boundary_mix import holdout_pool  # noqa: E402
from benchmarks.bench_probe_refine import picks_of  # noqa: E402
from distill_core.evaluate.linear_probe import linear_probe  # noqa: E402
from distill_core.evaluate.soft_probe import soft_label_probe  # noqa: E402
from distill_core.signals.teacher import softmax  # noqa: E402
from distill_core.synthesize.base import select_per_class  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished run folders")
    parser.add_argument("--cap", type=int, default=0)
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    args = parser.parse_args()
    ranks: dict[str, list[float]] = {}
    for run in args.runs:
        pool = holdout_pool(run, args.cap)
        x, y, held, classes, logits = pool.x, pool.y, pool.held, pool.classes, pool.logits
        xr, yr = x[pool.rest], y[pool.rest]
        print(f"{run.name}: {len(y)} pool rows", flush=True)
        for method in ("kmeans", "herding"):
            for budget in args.budgets:
                scores: dict[str, list[float]] = {}
                for seed in args.seeds:
                    rows = picks_of(select_per_class(method, xr, yr, budget, seed), budget)
                    scores.setdefault("hard", []).append(linear_probe(
                        xr[rows], yr[rows], x[held], y[held], classes).accuracy)
                    for t in args.temperatures:
                        soft = softmax(logits[rows], t)
                        scores.setdefault(f"T={t:g}", []).append(soft_label_probe(
                            xr[rows], soft, x[held], y[held], classes, 1.0, t).accuracy)
                means = {k: statistics.mean(v) for k, v in scores.items()}
                order = sorted(means, key=lambda k: -means[k])
                for k in means:  # ties share the mean rank
                    tied = [i + 1 for i, o in enumerate(order) if means[o] == means[k]]
                    ranks.setdefault(k, []).append(statistics.mean(tied))
                print(f"  {method} {budget}/class: " + ", ".join(
                    f"{k} {100 * m:.1f}" for k, m in means.items()), flush=True)
    print("mean rank over the cells: " + ", ".join(
        f"{k} {statistics.mean(v):.2f}" for k, v in ranks.items()))


if __name__ == "__main__":
    main()
