"""`bilevel` on a finished run's real features: this code against the code at a commit (read
from git), side by side in one process, on the same rows, each seed timed in turn.

Two shapes, the two places `synthesize.method: auto` runs it: the whole training pool (the
chosen recipe's run) and the cross-validation's pools (the other folds of a stratified
4,000-row sample, `auto.max_rows`). The picks of both versions must be identical (checked;
the run stops otherwise), so the figure is speed alone.

    python benchmarks/bench_bilevel.py --run RUNS/<run id> [--baseline 54daa68] [--seeds 3]

`--run` is any run folder with finished ingest and signals stages (e.g. the quickstart's).
The baseline runs with its own `herding` (bilevel's start) and `probe_refine` (its last
step) where the commit has them, so the comparison is the whole selector then and now.
Prints one JSON line per shape and seed, then the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.git_baseline import module_at  # noqa: E402
from distill_core.artifacts.store import RunStore  # noqa: E402
from distill_core.evaluate.probe_c import stratified_subsample  # noqa: E402
from distill_core.synthesize import bilevel as current  # noqa: E402
from distill_core.synthesize.base import SELECTORS  # noqa: E402

CV_ROWS = 4000


def training_pool(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """The run's training rows: signals' embeddings and ingest's label ids, same order."""
    store = RunStore.open(run)
    ingest = store.read("ingest", columns=["example_id", "split", "label_id"])
    signals = store.read("signals", columns=["example_id", "embedding"])
    if not ingest.column("example_id").equals(signals.column("example_id")):
        raise SystemExit(f"{run}: ingest and signals rows are not aligned")
    train = pc.equal(ingest.column("split"), "train").to_numpy(zero_copy_only=False)
    flat = signals.column("embedding").combine_chunks()
    x = flat.values.to_numpy().reshape(len(flat), -1)[train].astype(np.float32)
    return x, ingest.column("label_id").to_numpy()[train].astype(np.int64)


def exists_at(commit: str, path: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{commit}:{path}"], cwd=ROOT,
                          capture_output=True).returncode == 0


def baseline_bilevel(commit: str, folder: Path):  # noqa: ANN201
    """The commit's `bilevel`, calling the commit's `refine_with_probe` and running with
    the commit's `herding` registered (the current one restored after each call)."""
    current_herding = SELECTORS["herding"]
    old = module_at(commit, "distill_core/synthesize/bilevel.py", folder)
    old_herding = current_herding
    if exists_at(commit, "distill_core/synthesize/herding.py"):
        module_at(commit, "distill_core/synthesize/herding.py", folder)  # registers itself
        old_herding = SELECTORS["herding"]
    SELECTORS["herding"] = current_herding
    if hasattr(old, "refine_with_probe") and exists_at(
            commit, "distill_core/synthesize/probe_refine.py"):
        old.refine_with_probe = module_at(
            commit, "distill_core/synthesize/probe_refine.py", folder).refine_with_probe

    def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        SELECTORS["herding"] = old_herding
        try:
            return old.bilevel(*args, **kwargs)
        finally:
            SELECTORS["herding"] = current_herding

    return run


def timed(select, x: np.ndarray, y: np.ndarray, budget: int, seed: int) -> tuple[float, list]:
    start = time.perf_counter()
    picked = select(x, y, budget, seed)
    return time.perf_counter() - start, picked.indices.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--baseline", default="54daa68")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    x, y = training_pool(args.run)
    with tempfile.TemporaryDirectory() as folder:
        # Both called as select_per_class calls a joint selector (the baseline's import
        # registered its own function under the name, so the registry is not used here).
        versions = {"baseline": baseline_bilevel(args.baseline, Path(folder)),
                    "current": current.bilevel}

        def through(fn):
            return lambda xs, ys, budget, seed: fn(current.ClassData(xs), ys, budget, seed)

        shapes = {"whole pool": lambda seed: (x, y)}

        def cv_pool(seed: int) -> tuple[np.ndarray, np.ndarray]:
            rows = stratified_subsample(y, seed, CV_ROWS)
            pool = rows[np.arange(len(rows)) % 3 != 0]  # two thirds, as a fold's pool
            return x[pool], y[pool]

        shapes["cv pool"] = cv_pool
        totals: dict[tuple[str, str], list[float]] = {}
        for shape, make in shapes.items():
            for seed in range(args.seeds):
                xs, ys = make(seed)
                picks = {}
                for name, fn in versions.items():
                    seconds, picks[name] = timed(through(fn), xs, ys, args.per_class, seed)
                    totals.setdefault((shape, name), []).append(seconds)
                    print(json.dumps({"shape": shape, "rows": len(ys), "seed": seed,
                                      "version": name, "seconds": round(seconds, 3)}))
                if picks["baseline"] != picks["current"]:
                    raise SystemExit(f"{shape}, seed {seed}: the picks differ")
        for shape in shapes:
            old_s = statistics.median(totals[(shape, "baseline")])
            new_s = statistics.median(totals[(shape, "current")])
            print(f"{shape}: baseline {old_s:.2f} s, current {new_s:.2f} s (median of "
                  f"{args.seeds} seeds), speed-up {old_s / new_s:.2f}x; picks identical")


if __name__ == "__main__":
    main()
