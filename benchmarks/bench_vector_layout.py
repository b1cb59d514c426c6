"""How fast a stage's vector parts are written and read, this code against an earlier commit.

Writes a signals-shaped stage (`example_id`, `split`, a float32 `embedding` of `--dim`
dimensions) of `--rows` rows through `RunStore.stage_writer`, then reads it the three ways
the pipeline does: every row in order (`stage_batches`, as selection and the evaluate pool
do), the vectors as one matrix (`RunStore.read`, as the in-memory stages do), and a few
thousand scattered rows (`rows_at`, as the random draws and the report's corpus map do).
Each measurement runs in a fresh process with the tree's own code, alternating the earlier
commit (a git worktree) and this tree, and checks that the vectors read back equal the
vectors written, bit for bit.

    git worktree add /tmp/base <commit>
    python benchmarks/bench_vector_layout.py --baseline-tree /tmp/base --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEASURE = """
import json, sys, time
import numpy as np, pyarrow as pa
from distill_core.artifacts.store import RunStore
from distill_core.pipeline.batches import rows_at, stage_batches
from distill_core.signals.embeddings import matrix, vectors_array

rows, dim, scattered, folder = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
vectors = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)
ids = pa.array([f"row-{i}" for i in range(rows)])
split = pa.array(["train"] * rows)
store = RunStore(folder, "bench")
out = {}
start = time.perf_counter()
writer = store.stage_writer("signals")
for first in range(0, rows, 65_536):
    last = min(rows, first + 65_536)
    writer.write(pa.table({"example_id": ids[first:last], "split": split[first:last],
                           "embedding": vectors_array(vectors[first:last])}))
writer.publish({"stage": "signals"})
out["write"] = time.perf_counter() - start

start = time.perf_counter()
seen = 0
for batch in stage_batches(store, "signals", ["embedding"]):
    got = matrix(batch)
    assert np.array_equal(got, vectors[seen:seen + len(got)]), "streamed vectors differ"
    seen += len(got)
assert seen == rows
out["stream"] = time.perf_counter() - start

start = time.perf_counter()
whole = matrix(store.read("signals", columns=["embedding"]))
out["read"] = time.perf_counter() - start
assert np.array_equal(whole, vectors), "read vectors differ"

positions = np.sort(np.random.default_rng(1).choice(rows, scattered, replace=False))
start = time.perf_counter()
table, count = rows_at(store, "signals", positions, ["embedding"])
out["rows_at"] = time.perf_counter() - start
assert count == rows and np.array_equal(matrix(table), vectors[positions]), "rows_at differs"
out["bytes"] = sum(p.stat().st_size for p in store.parts("signals"))
print(json.dumps(out))
"""

TIMED = ("write", "stream", "read", "rows_at")


def measure(tree: Path, rows: int, dim: int, scattered: int) -> dict[str, float]:
    """One write-and-read round in a fresh process running `tree`'s code."""
    with tempfile.TemporaryDirectory(prefix="bench-vectors-") as folder:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        done = subprocess.run([sys.executable, "-c", MEASURE, str(rows), str(dim),
                               str(scattered), folder], env=env, cwd=tree, check=True,
                              capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-tree", type=Path, required=True,
                        help="a git worktree of the commit to compare with")
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--scattered", type=int, default=2_000,
                        help="rows read by position (rows_at)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": args.baseline_tree.resolve(), "now": ROOT}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in order:
            result = measure(trees[name], args.rows, args.dim, args.scattered)
            results[name].append(result)
            print(name, json.dumps({k: round(v, 3) for k, v in result.items()}), flush=True)
    print(f"\n{args.rows:,} rows x {args.dim} float32, {args.rounds} rounds, median s")
    print("| what | before | now | ratio |")
    print("|---|---|---|---|")
    for key in TIMED:
        before = statistics.median(r[key] for r in results["before"])
        now = statistics.median(r[key] for r in results["now"])
        print(f"| {key} | {before:.3f} | {now:.3f} | {before / now:.2f}x |")
    sizes = {name: results[name][0]["bytes"] for name in trees}
    print(f"| bytes | {sizes['before']:,} | {sizes['now']:,} | |")


if __name__ == "__main__":
    main()
