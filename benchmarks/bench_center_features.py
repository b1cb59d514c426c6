"""Selection on centred features (`synthesize.center_features`) against the raw vectors.

For each dataset the signals stage embeds the corpus with MiniLM and with the static encoder
distilled from it (`bench_static_encoder.py`'s runs, cached in --runs-dir). k-means and
herding select N per class on each encoder's features, raw and centred (less the pool's
mean, L2-normalised again); the same learner scores every selection: a linear probe (C = 1)
on MiniLM features, (a) on a held-out part of the training split (--holdout rows drawn per
seed; the selection pool is the rest: what defaults are chosen on), and (b) on the
evaluation split (reported, chooses nothing).

    python benchmarks/bench_center_features.py --data-dir ../shared/datasets \
        --runs-dir runs --datasets sst2,ag_news,sst5_kim
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_static_encoder import (  # noqa: E402
    DISTILLED,
    MINILM,
    STATIC,
    signals_run,
    split_arrays,
)
from distill_core.evaluate.linear_probe import linear_probe  # noqa: E402
from distill_core.synthesize.base import select_per_class  # noqa: E402
from distill_core.synthesize.centering import centered  # noqa: E402


def scores(method: str, features: np.ndarray, center: bool, train: tuple, evaluation: tuple,
           per_class: int, seeds: int, holdout: int) -> tuple[list[float], list[float]]:
    """Accuracy on the evaluation split and on a training holdout, one per seed."""
    (x, y, _), (ex, ey, _) = train, evaluation
    labels = sorted(set(y.tolist()))
    on_eval, on_holdout = [], []
    for seed in range(seeds):
        f = centered(features, features.mean(axis=0)) if center else features
        pick = select_per_class(method, f, y, per_class, seed).indices
        on_eval.append(linear_probe(x[pick], y[pick], ex, ey, labels).accuracy)
        order = np.random.default_rng(100 + seed).permutation(len(y))
        held, pool = order[:holdout], order[holdout:]
        f = features[pool]
        f = centered(f, f.mean(axis=0)) if center else f
        pick = pool[select_per_class(method, f, y[pool], per_class, seed).indices]
        on_holdout.append(linear_probe(x[pick], y[pick], x[held], y[held], labels).accuracy)
    return on_eval, on_holdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--datasets", default="sst2,ag_news,sst5_kim")
    parser.add_argument("--methods", default="herding,kmeans")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--holdout", type=int, default=2000)
    parser.add_argument("--out", default="bench-out/center_features.json")
    args = parser.parse_args()
    rows = []
    print("| dataset | method | features | centred | training holdout | evaluation split |\n"
          "|---|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        minilm = split_arrays(signals_run(dataset, MINILM, args.data_dir, args.runs_dir))
        static = split_arrays(signals_run(dataset, STATIC, args.data_dir, args.runs_dir,
                                          extra=DISTILLED))
        for method in args.methods.split(","):
            for name, features in (("MiniLM", minilm["train"][0]),
                                   ("static", static["train"][0])):
                for center in (False, True):
                    on_eval, held = scores(method, features, center, minilm["train"],
                                           minilm["eval"], args.per_class, args.seeds,
                                           args.holdout)
                    row = {"dataset": dataset, "method": method, "features": name,
                           "centred": center, "holdout": held, "eval": on_eval}
                    rows.append(row)
                    print(f"| {dataset} | {method} | {name} | {'yes' if center else 'no'} | "
                          f"{100 * np.mean(held):.1f} ± {100 * np.std(held):.1f} | "
                          f"{100 * np.mean(on_eval):.1f} ± {100 * np.std(on_eval):.1f} |",
                          flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
