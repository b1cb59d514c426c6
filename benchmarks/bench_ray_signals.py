"""Signals on the Ray backend: the driver feeding the pool against the workers reading the parts.

`driver-fed` is the path every executor had before `map_parquet`: the driver reads ingest's
rows batch by batch (200k rows) and hands each batch's distinct texts to a Ray Data actor
pool (`ray.data.from_arrow`). `workers-read` is the Ray path now: the driver hands the pool
the parts ingest's manifest names, Ray Data reads them on the workers, and the driver only
receives the vectors, block by block, and writes them. Both modes run in a fresh process each
on a corpus built by `benchmarks/bench_scale.py` (its `<work>/configs/<size>-static.yaml` and
`<work>/corpus-sst2-<size>/live`), with a local Ray (2 actors at 0.5 CPU), the static
encoder, and the row cache off (both embed every text). Measured: the driver's RSS while the
signals stage runs (sampled every 50 ms; Ray's workers are other processes), its wall time,
and whether the two modes' vectors agree (max |difference|, read back part by part).

    python -m benchmarks.bench_ray_signals --work /tmp/scale --size 1m
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODES = ("driver-fed", "workers-read")


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


def child(mode: str, config: Path, data_dir: Path, runs: Path) -> dict[str, Any]:
    """One mode in this process: ingest (local), then signals on Ray, sampled."""
    from distill_core.artifacts.store import RunStore
    from distill_core.config import load_config
    from distill_core.pipeline.order import run_pipeline
    from distill_core.pipeline.stage import StageContext
    from tasks.executors import make_executor

    cfg = load_config(config, [f"data.data_dir={data_dir}", "compute.backend=ray",
                               "compute.num_actors=2", "compute.cpus_per_actor=0.5",
                               "compute.torch_threads=1", "signals.row_cache=false"])
    store = RunStore(runs, cfg.run_id())
    executor = make_executor(cfg.compute, cfg.faults)
    if mode == "driver-fed":
        executor.reads_parts = False  # the driver reads the rows and feeds the pool
    ctx = StageContext(cfg, store, executor)
    run_pipeline(ctx, "ingest")
    before = _rss_mb()
    peak = {"mb": before}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["mb"] = max(peak["mb"], _rss_mb())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    run_pipeline(ctx, "signals")
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    manifest = store.manifest("signals") or {}
    return {"mode": mode, "run_dir": str(store.root), "signals_s": round(seconds, 1),
            "driver_rss_before_mb": round(before), "driver_peak_rss_mb": round(peak["mb"]),
            "driver_rss_growth_mb": round(peak["mb"] - before),
            "read_by": manifest.get("read_by", "driver"), "workers": manifest.get("workers"),
            "rows": (manifest.get("counts") or {}).get("rows_out")}


def max_difference(first: str, second: str) -> float:
    """The largest |difference| between two runs' embeddings, row for row (ids checked)."""
    import numpy as np

    from distill_core.artifacts.store import RunStore
    from distill_core.pipeline.batches import stage_batches
    from distill_core.signals.embeddings import matrix

    worst = 0.0
    pairs = zip(stage_batches(RunStore.open(first), "signals"),
                stage_batches(RunStore.open(second), "signals"), strict=True)
    for a, b in pairs:
        if not a.column("example_id").equals(b.column("example_id")):
            raise RuntimeError("the two modes' embeddings list different rows")
        worst = max(worst, float(np.max(np.abs(matrix(a) - matrix(b)))))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", required=True, help="bench_scale.py's --work folder.")
    parser.add_argument("--size", default="100k", help="A corpus size bench_scale.py built.")
    parser.add_argument("--out", default=None, help="Results JSON (default: WORK/...).")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--runs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work).resolve()
    config = work / "configs" / f"{args.size}-static.yaml"
    data_dir = work / f"corpus-sst2-{args.size}" / "live"
    if args.child:
        print(json.dumps(child(args.child, config, data_dir, Path(args.runs))))
        return
    if not config.is_file() or not (data_dir / "days").is_dir():
        sys.exit(f"{config} or {data_dir}/days missing: run benchmarks/bench_scale.py with "
                 f"--sizes {args.size} --work {work} first")
    results = []
    for mode in MODES:
        runs = work / f"ray-signals-{args.size}-{mode}"
        shutil.rmtree(runs, ignore_errors=True)
        (runs / ".cache").mkdir(parents=True)
        shutil.copytree(work / "static-cache" / "static-encoders",
                        runs / ".cache" / "static-encoders")
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_ray_signals", "--work",
                              str(work), "--size", args.size, "--child", mode, "--runs",
                              str(runs)], cwd=ROOT, capture_output=True, text=True,
                             check=False)
        if out.returncode != 0:
            sys.exit(f"{mode} failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    difference = max_difference(results[0]["run_dir"], results[1]["run_dir"])
    print("\n| mode | rows | signals s | driver RSS before MB | driver peak MB | growth MB |"
          "\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['rows']:,} | {r['signals_s']} | {r['driver_rss_before_mb']:,} "
              f"| {r['driver_peak_rss_mb']:,} | {r['driver_rss_growth_mb']:,} |")
    print(f"\nmax |difference| between the modes' vectors: {difference:.2e}")
    target = Path(args.out or work / f"ray-signals-{args.size}.json")
    target.write_text(json.dumps({"size": args.size, "results": results,
                                  "max_difference": difference}, indent=2))


if __name__ == "__main__":
    main()
