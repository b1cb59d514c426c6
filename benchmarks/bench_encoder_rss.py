"""Peak RSS and wall time of the MiniLM encoder: batches capped by padded tokens (this
code, `token_budget_batches`) against fixed 128-row batches (the code at a commit, read
from git), each run in a fresh process (RSS is per process), alternating.

Texts (`--texts` of each kind):
- `long`: each 12 SST-2 training sentences joined, so most reach the 256-token limit
  (the recombined rows of `bench_scale.py` are of this kind);
- `sentences`: SST-2 training sentences as they are (batches unchanged by the cap).

Each child encodes with `precision: auto` and one torch thread, and writes its vectors;
the parent reports the peak RSS above the loaded model's, the wall time, their ratios,
and the smallest cosine between the two versions' vectors of a text.

    python benchmarks/bench_encoder_rss.py --data-dir ../shared/datasets \
        [--texts 1024] [--repeats 2] [--baseline 54daa68]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.git_baseline import module_at  # noqa: E402

KINDS = ("long", "sentences")


def texts_of(kind: str, data_dir: Path, n: int) -> list[str]:
    lines = (data_dir / "sst2_glue" / "train.tsv").read_text().splitlines()[1:]
    sentences = [line.split("\t")[0] for line in lines]
    rng = np.random.default_rng(0)
    if kind == "sentences":
        return [sentences[j] for j in rng.choice(len(sentences), n, replace=False)]
    return [" ".join(sentences[j] for j in rng.integers(0, len(sentences), 12))
            for _ in range(n)]


def child(kind: str, version: str, baseline: str, data_dir: Path, n: int, out: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    if version == "baseline":
        module = module_at(baseline, "distill_core/signals/encoder.py", out.parent)
    else:
        from distill_core.signals import encoder as module
    texts = texts_of(kind, data_dir, n)
    encoder = module.SentenceEncoder("all-MiniLM-L6-v2", precision="auto")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    vectors = encoder.encode(texts, 128)
    seconds = time.perf_counter() - start
    np.save(out, vectors)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"texts": kind, "version": version, "seconds": round(seconds, 2),
            "rss_before_mb": round(before), "peak_growth_mb": round(peak - before)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("TEXTDISTILL_DATA_DIR", "../shared/datasets")))
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline", default="54daa68")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "VERSION", "OUT"))
    args = parser.parse_args()
    if args.child:
        kind, version, out = args.child
        print(json.dumps(child(kind, version, args.baseline, args.data_dir, args.texts,
                               Path(out))))
        return
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for kind in KINDS:
            for repeat in range(args.repeats):
                for version in ("baseline", "current"):
                    out = Path(folder) / f"{kind}-{version}-{repeat}.npy"
                    run = subprocess.run(
                        [sys.executable, __file__, "--data-dir", str(args.data_dir), "--texts",
                         str(args.texts), "--baseline", args.baseline, "--child", kind, version,
                         str(out)], check=True, capture_output=True, text=True)
                    results.append(json.loads(run.stdout.strip().splitlines()[-1]))
                    print(json.dumps(results[-1]), flush=True)
            old, new = (np.load(Path(folder) / f"{kind}-{v}-0.npy") for v in ("baseline",
                                                                              "current"))
            cosine = float(np.min(np.sum(old * new, axis=1)))
            mine = {v: [r for r in results if r["texts"] == kind and r["version"] == v]
                    for v in ("baseline", "current")}
            wall = {v: statistics.median(r["seconds"] for r in rows) for v, rows in mine.items()}
            growth = {v: statistics.median(r["peak_growth_mb"] for r in rows)
                      for v, rows in mine.items()}
            print(f"{kind}: peak RSS above the model {growth['baseline']:.0f} -> "
                  f"{growth['current']:.0f} MB, wall {wall['baseline']:.2f} -> "
                  f"{wall['current']:.2f} s (x{wall['current'] / wall['baseline']:.2f}), "
                  f"medians of {args.repeats}; smallest cosine between versions {cosine:.5f}")


if __name__ == "__main__":
    main()
