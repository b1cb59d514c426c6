"""Nightly rerun over a grown corpus: the signals stage with and without the per-text row cache.

Day 1 is GLUE SST-2 train cut to its first 99 % of rows (of `--rows`, default all 67,349),
day 2 the whole of it (+1 %); both with the real validation split. Three timings of the
signals stage, each in a fresh process (so torch's import and the model load count the same
way in all three), through the stage runner exactly as `textdistill run` does:

1. day 1, empty runs folder (row cache on: everything embedded, the cache filled);
2. day 2 in the same runs folder (row cache on: only the new texts embedded);
3. day 2 in a fresh runs folder with `signals.row_cache=false` (today's full recompute).

Reports seconds, rows reused / computed and the ratios day2/day1 and day2/full-recompute.

    python benchmarks/bench_incremental.py --data-dir ../shared/datasets [--rows 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_day(source: Path, dev: Path, target: Path, rows: int) -> Path:
    """A data folder holding the header and first `rows` rows of the real train file."""
    (target / "sst2_glue").mkdir(parents=True, exist_ok=True)
    lines = source.read_bytes().splitlines(keepends=True)
    (target / "sst2_glue" / "train.tsv").write_bytes(b"".join(lines[:rows + 1]))
    (target / "sst2_glue" / "dev.tsv").write_bytes(dev.read_bytes())
    return target


def phase(data: str, runs: str, name: str, row_cache: bool) -> dict:
    """Ingest (untimed), then the signals stage (timed) in this process."""
    from distill_core.artifacts.manifest import peak_rss_mb
    from distill_core.artifacts.store import RunStore
    from distill_core.config import load_config
    from distill_core.pipeline.order import run_pipeline
    from distill_core.pipeline.stage import StageContext
    from tasks.executors import make_executor

    cfg = load_config(None, [f"data.data_dir={data}", f"run.name={name}",
                             f"signals.row_cache={str(row_cache).lower()}"])
    store = RunStore(runs, cfg.run_id())
    ctx = StageContext(cfg, store, make_executor(cfg.compute, cfg.faults))
    run_pipeline(ctx, "ingest")
    start = time.perf_counter()
    outcomes = run_pipeline(ctx, "signals")
    seconds = time.perf_counter() - start
    manifest = store.manifest("signals") or {}
    status = {o.stage: o.status for o in outcomes}
    return {"phase": name, "signals_s": round(seconds, 2), "status": status["signals"],
            "stage_clock_s": manifest.get("wall_time_s"),
            "corpus_rows": manifest.get("counts", {}).get("rows_out"),
            "rows_reused": manifest.get("rows_reused"),
            "rows_computed": manifest.get("rows_computed"),
            "texts_per_second": manifest.get("texts_per_second"),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def run_phase(data: Path, runs: Path, name: str, row_cache: bool) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--data", str(data),
                          "--runs", str(runs), "--row-cache", str(int(row_cache))],
                         cwd=ROOT, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TEXTDISTILL_DATA_DIR"))
    parser.add_argument("--rows", type=int, default=None,
                        help="Day-2 rows of SST-2 train (default: all 67,349).")
    parser.add_argument("--growth", type=float, default=0.01, help="Day 2 over day 1.")
    parser.add_argument("--work", default=None, help="Folder for data and runs (default: tmp).")
    parser.add_argument("--out", default="bench-out/incremental.json")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--runs", help=argparse.SUPPRESS)
    parser.add_argument("--row-cache", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.data, args.runs, args.phase, bool(args.row_cache))))
        return
    if not args.data_dir:
        sys.exit("--data-dir (or TEXTDISTILL_DATA_DIR): the shared datasets folder")
    source = Path(args.data_dir) / "sst2_glue" / "train.tsv"
    total = len(source.read_bytes().splitlines()) - 1
    day2_rows = min(args.rows or total, total)
    day1_rows = round(day2_rows / (1 + args.growth))
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-incremental-"))
    dev = Path(args.data_dir) / "sst2_glue" / "dev.tsv"
    day1 = write_day(source, dev, work / "data" / "day1", day1_rows)
    day2 = write_day(source, dev, work / "data" / "day2", day2_rows)
    first = run_phase(day1, work / "runs", "day1", True)
    second = run_phase(day2, work / "runs", "day2", True)
    full = run_phase(day2, work / "runs-full", "day2-full", False)
    report = {
        "train_rows": {"day1": day1_rows, "day2": day2_rows}, "work": str(work),
        "cpus": os.cpu_count(), "load_average": os.getloadavg(),
        "phases": [first, second, full],
        "day2_over_day1": round(second["signals_s"] / first["signals_s"], 4),
        "day2_over_full_recompute": round(second["signals_s"] / full["signals_s"], 4),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"day 1 ({day1_rows} train rows): {first['signals_s']} s, day 2 (+{day2_rows - day1_rows}"
          f"): {second['signals_s']} s with the row cache ({second['rows_computed']} texts "
          f"embedded, {second['rows_reused']} reused), {full['signals_s']} s without; "
          f"day2/day1 {report['day2_over_day1']:.1%}, day2/full "
          f"{report['day2_over_full_recompute']:.1%}")


if __name__ == "__main__":
    main()
