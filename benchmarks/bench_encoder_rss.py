"""Peak RSS and wall time of the MiniLM encoder with glibc's default heap against a fixed
4 MiB mmap threshold (`distill_core/heap.py`), each in a fresh process, alternating.

Workloads, each measured in its own child process:
- `encode`: `SentenceEncoder.encode` (all-MiniLM-L6-v2, `precision: auto`, 128 a batch,
  one torch thread) on `--texts` long rows, each 12 SST-2 training sentences joined (so
  most reach the 256-token limit: the recombined rows of `bench_scale.py` are of this kind);
  the figure is the peak RSS above the loaded model's;
- `kmeans`: the project's `kmeans` selector, 10 per class, on 60,000 x 384 Gaussian rows
  in 2 classes (what the threshold costs the large numpy temporaries of the stages after
  the encoder, in the same process).

    python benchmarks/bench_encoder_rss.py --data-dir ../shared/datasets \
        [--texts 1024] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = ("glibc default", "threshold 4 MiB")


def child(workload: str, mode: str, data_dir: Path, texts: int) -> dict:
    import numpy as np
    import torch

    from distill_core import heap

    torch.set_num_threads(1)
    if mode == MODES[1]:
        assert heap.keep_large_blocks_mapped(), "mallopt is not available here"
    else:
        heap._applied = False  # the encoder must not set it in this mode
    if workload == "encode":
        from distill_core.signals.encoder import SentenceEncoder

        lines = (data_dir / "sst2_glue" / "train.tsv").read_text().splitlines()[1:]
        sentences = [line.split("\t")[0] for line in lines]
        rng = np.random.default_rng(0)
        rows = [" ".join(sentences[j] for j in rng.integers(0, len(sentences), 12))
                for _ in range(texts)]
        encoder = SentenceEncoder("all-MiniLM-L6-v2", precision="auto")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        encoder.encode(rows, 128)
    else:
        from distill_core.synthesize.base import select_per_class

        rng = np.random.default_rng(0)
        x = rng.normal(size=(60_000, 384)).astype(np.float32)
        y = (rng.random(60_000) < 0.45).astype(np.int64)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        select_per_class("kmeans", x, y, 10, 0, {"threads": 1})
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"workload": workload, "mode": mode, "seconds": round(seconds, 2),
            "rss_before_mb": round(before), "peak_growth_mb": round(peak - before)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("TEXTDISTILL_DATA_DIR", "../shared/datasets")))
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workloads", default="encode,kmeans")
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "MODE"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.data_dir, args.texts)))
        return
    results = []
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    for workload in args.workloads.split(","):
        for _ in range(args.repeats):
            for mode in MODES:
                out = subprocess.run([sys.executable, __file__, "--data-dir", str(args.data_dir),
                                      "--texts", str(args.texts), "--child", workload, mode],
                                     check=True, capture_output=True, text=True, env=env)
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[-1]), flush=True)
    for workload in args.workloads.split(","):
        mine = {m: [r for r in results if r["workload"] == workload and r["mode"] == m]
                for m in MODES}
        wall = {m: statistics.median(r["seconds"] for r in mine[m]) for m in MODES}
        growth = {m: statistics.median(r["peak_growth_mb"] for r in mine[m]) for m in MODES}
        print(f"{workload}: peak RSS growth {growth[MODES[0]]:.0f} -> {growth[MODES[1]]:.0f} MB, "
              f"wall {wall[MODES[0]]:.2f} -> {wall[MODES[1]]:.2f} s "
              f"(x{wall[MODES[1]] / wall[MODES[0]]:.2f}), medians of {args.repeats}")


if __name__ == "__main__":
    main()
