"""Row-cache lookups batch by batch: the key index (this code) against the filtered scan of
every part per lookup (the code before it, read from git), side by side in one process.

The signals stage looks up one batch of texts at a time. Two cases, as a run meets them:
- first run: the cache starts empty, every batch misses and appends its part;
- nightly rerun: the cache holds every text (one part per batch), every batch hits.
Both implementations see the same keys and vectors; the rerun's vectors are checked equal.

    python benchmarks/bench_row_cache.py [--rows 300000] [--batch 65536] [--dim 256]
        [--baseline eacac38]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.git_baseline import module_at  # noqa: E402
from distill_core.signals import row_cache as current  # noqa: E402


def run(module, cache_root: Path, keys: list[pa.Array], vectors: list[np.ndarray]
        ) -> dict[str, float]:
    """First run (all misses, a part appended per batch), then the rerun (all hits)."""
    settings = {"bench": "row-cache", "module": module.__name__}
    cache = module.RowCache(cache_root, settings)
    start = time.perf_counter()
    for batch_keys, batch_vectors in zip(keys, vectors, strict=True):
        found = cache.lookup(batch_keys)
        assert not found.found.any()
        cache.append(batch_keys, batch_vectors, "bench")
    first = time.perf_counter() - start
    cache = module.RowCache(cache_root, settings)  # the nightly run's own object
    start = time.perf_counter()
    for batch_keys, batch_vectors in zip(keys, vectors, strict=True):
        found = cache.lookup(batch_keys)
        assert found.found.all() and np.array_equal(found.vectors, batch_vectors)
    rerun = time.perf_counter() - start
    return {"first_run_s": round(first, 2), "rerun_s": round(rerun, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=65_536)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--baseline", default="eacac38")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    texts = [f"text {i}" for i in range(args.rows)]
    keys = [current.text_hashes(texts[i:i + args.batch]) for i in range(0, args.rows, args.batch)]
    vectors = [rng.standard_normal((len(k), args.dim)).astype(np.float32) for k in keys]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old = module_at(args.baseline, "distill_core/signals/row_cache.py", folder)
        results = {"rows": args.rows, "batch": args.batch, "dim": args.dim,
                   f"baseline ({args.baseline})": run(old, folder / "old", keys, vectors),
                   "key index": run(current, folder / "new", keys, vectors)}
    base, new = results[f"baseline ({args.baseline})"], results["key index"]
    results["speed-up"] = {k: round(base[k] / max(new[k], 1e-9), 1) for k in new}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
