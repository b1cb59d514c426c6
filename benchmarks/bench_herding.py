"""`herding` now against `herding` at a baseline commit, side by side in one process.

On a finished run's pool (its `clean` rows and `signals` features, read as
`bench_probe_refine.py` reads them), each class of it in turn, both versions alternate
`--repeats` times at `--ranked` rows per class (bilevel's start: budget x oversample).
Reports the medians, their ratio, and whether the picks and scores are identical.
With `--streamed`, the same for `streamed_herding` (the herding of a class above
`STREAM_ABOVE_ROWS`, one pass over its spilled rows per pick), each class spilled to a
temporary file first as the synthesize stage spills it.

    python benchmarks/bench_herding.py RUNS/quickstart-... --baseline 8b4f1a2 --ranked 60
    python benchmarks/bench_herding.py RUNS/quickstart-... --baseline 8b4f1a2 --streamed
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
from distill_core.synthesize.class_rows import SpillWriter  # noqa: E402
from distill_core.synthesize.herding import herding  # noqa: E402
from distill_core.synthesize.streamed import streamed_herding  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--baseline", required=True, help="commit of the code before")
    parser.add_argument("--ranked", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--streamed", action="store_true",
                        help="time streamed_herding on spilled classes instead")
    args = parser.parse_args()
    registered = SELECTORS["herding"]
    with tempfile.TemporaryDirectory() as folder:
        path = ("distill_core/synthesize/streamed.py" if args.streamed
                else "distill_core/synthesize/herding.py")
        baseline = module_at(args.baseline, path, Path(folder))
        old = baseline.streamed_herding if args.streamed else baseline.herding
    now = streamed_herding if args.streamed else herding
    SELECTORS["herding"] = registered  # the baseline module registered itself on import
    x, y, _, _ = pool_and_eval(args.run)
    with tempfile.TemporaryDirectory() as spill:
        if args.streamed:
            writer = SpillWriter(Path(spill))
            writer.add(y, x)
            classes = writer.close()
        else:
            classes = {int(label): ClassData(x[y == label]) for label in np.unique(y)}
        timed(args, classes, old, now, int(len(y)))


def timed(args: argparse.Namespace, classes: dict, old, now, rows: int) -> None:
    """Both versions alternating over every class `args.repeats` times; prints the line."""
    times: dict[str, list[float]] = {"baseline": [], "now": []}
    identical = True
    for _ in range(args.repeats):
        for data in classes.values():
            results = {}
            for name, function in (("baseline", old), ("now", now)):
                started = time.perf_counter()
                results[name] = function(data, args.ranked, 0, ranked=args.ranked)
                times[name].append(time.perf_counter() - started)
            identical &= (np.array_equal(results["baseline"].indices, results["now"].indices)
                          and np.array_equal(results["baseline"].scores, results["now"].scores))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"rows": rows, "classes": len(classes), "streamed": args.streamed,
                      "ranked": args.ranked, "median_s_per_class": {
                          k: round(v, 3) for k, v in medians.items()},
                      "speedup": round(medians["baseline"] / medians["now"], 2),
                      "identical_picks_and_scores": bool(identical)}))


if __name__ == "__main__":
    main()
