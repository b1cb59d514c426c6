"""`herding` now against `herding` at a baseline commit, side by side in one process.

On a finished run's pool (its `clean` rows and `signals` features, read as
`bench_probe_refine.py` reads them), each class of it in turn, both versions alternate
`--repeats` times at `--ranked` rows per class (bilevel's start: budget x oversample).
Reports the medians, their ratio, and whether the picks and scores are identical.

    python benchmarks/bench_herding.py RUNS/quickstart-... --baseline 8b4f1a2 --ranked 60
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's code
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_probe_refine import pool_and_eval  # noqa: E402
from git_baseline import module_at  # noqa: E402

from distill_core.synthesize.base import SELECTORS, ClassData  # noqa: E402
from distill_core.synthesize.herding import herding  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--baseline", required=True, help="commit of the code before")
    parser.add_argument("--ranked", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    registered = SELECTORS["herding"]
    with tempfile.TemporaryDirectory() as folder:
        old = module_at(args.baseline, "distill_core/synthesize/herding.py", Path(folder)).herding
    SELECTORS["herding"] = registered  # the baseline module registered itself on import
    x, y, _, _ = pool_and_eval(args.run)
    times: dict[str, list[float]] = {"baseline": [], "now": []}
    identical = True
    for _ in range(args.repeats):
        for label in np.unique(y):
            data = ClassData(x[y == label])
            results = {}
            for name, function in (("baseline", old), ("now", herding)):
                started = time.perf_counter()
                results[name] = function(data, args.ranked, 0, ranked=args.ranked)
                times[name].append(time.perf_counter() - started)
            identical &= (np.array_equal(results["baseline"].indices, results["now"].indices)
                          and np.array_equal(results["baseline"].scores, results["now"].scores))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"rows": int(len(y)), "classes": int(len(np.unique(y))),
                      "ranked": args.ranked, "median_s_per_class": {
                          k: round(v, 3) for k, v in medians.items()},
                      "speedup": round(medians["baseline"] / medians["now"], 2),
                      "identical_picks_and_scores": bool(identical)}))


if __name__ == "__main__":
    main()
