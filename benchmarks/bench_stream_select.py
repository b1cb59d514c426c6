"""Selection in memory against selection streamed from parts: wall time and peak RSS.

Synthetic 256-dimensional unit vectors (two classes, each a mixture of 20 blobs, classes
interleaved as in a corpus) are written once as Parquet parts of 200,000 rows
(`example_id`, `label_id`, `embedding`), like the signals stage's. Each variant runs in a
subprocess of its own, so its peak RSS is its own:

- `memory`: read every part into one matrix, then `select_per_class` (today's path);
- `streamed`: one pass over the parts spilling each class to a file, then
  `StreamedSelection` with every class streamed (mini-batch k-means / herding by passes);
- `streamed-centred`: the same, each chunk read back less the pool's mean and normalised
  again (`synthesize.center_features`, on for a static encoder), to price that transform.

    python benchmarks/bench_stream_select.py                 # 100k and 1M rows
    python benchmarks/bench_stream_select.py --rows 100000 --methods herding
    python benchmarks/bench_stream_select.py --rows 1000000 --variants streamed streamed-centred

Prints one line per run and the ratios: streamed / memory at each size, and the cost per
row and peak RSS of the largest size over the smallest.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIM, PART_ROWS, BUDGET, OVERSAMPLE = 256, 200_000, 10, 3


def write_parts(folder: Path, rows: int) -> None:
    """`rows` synthetic embedding rows in parts of `PART_ROWS` (skipped when present)."""
    if (folder / "done").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    means = rng.normal(size=(2, 20, DIM)).astype(np.float32)
    for index, start in enumerate(range(0, rows, PART_ROWS)):
        n = min(PART_ROWS, rows - start)
        labels = rng.integers(0, 2, size=n)
        x = means[labels, rng.integers(0, 20, size=n)] + rng.normal(size=(n, DIM)).astype(
            np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        flat = pa.array(x.ravel(), pa.float32())
        pq.write_table(pa.table({
            "example_id": pa.array([f"{start + i:032x}" for i in range(n)]),
            "label_id": pa.array(labels, pa.int64()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, DIM)}),
            folder / f"part-{index:05d}.parquet", row_group_size=65_536)  # as StageWriter
    (folder / "done").write_text("ok")


def run_variant(folder: Path, variant: str, method: str) -> dict[str, float]:
    """One variant in this process: its wall time and peak RSS."""
    from distill_core.signals.embeddings import matrix
    from distill_core.synthesize import streamed
    from distill_core.synthesize.base import select_per_class
    from distill_core.synthesize.class_rows import SpillWriter

    params = {"n_init": 3, "max_iter": 300} if method == "kmeans" else {}
    parts = sorted(folder.glob("part-*.parquet"))
    start = time.perf_counter()
    if variant == "memory":
        table = pa.concat_tables([pq.read_table(p) for p in parts])
        x, labels = matrix(table), table.column("label_id").to_numpy()
        del table
        picked = select_per_class(method, x, labels, BUDGET, 0, params, OVERSAMPLE)
    else:
        streamed.STREAM_ABOVE_ROWS = 0  # every class streams, whatever its size
        spill = Path(tempfile.mkdtemp(prefix="spill-", dir=folder.parent))
        try:
            writer, labels_seen = SpillWriter(spill), []
            for path in parts:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
                    rows = pa.Table.from_batches([batch])
                    labels = rows.column("label_id").to_numpy()
                    writer.add(labels, matrix(rows))
                    labels_seen.append(labels)
            classes = writer.close()
            if variant == "streamed-centred":
                classes = {k: rows.centered_on(writer.mean()) for k, rows in classes.items()}
            selection = streamed.StreamedSelection(method, np.concatenate(labels_seen),
                                                   classes, BUDGET, params, OVERSAMPLE)
            picked = selection.select(0)
        finally:
            shutil.rmtree(spill, ignore_errors=True)
    wall = time.perf_counter() - start
    return {"wall_s": round(wall, 2), "rows": sum(pq.ParquetFile(p).metadata.num_rows
                                                  for p in parts),
            "picked": int(len(picked.indices)),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--methods", nargs="+", default=["kmeans", "herding"])
    parser.add_argument("--variants", nargs="+", default=["memory", "streamed"],
                        choices=["memory", "streamed", "streamed-centred"])
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds (median)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir())
                        / "textdistill-bench-stream-select")
    parser.add_argument("--run", nargs=3, metavar=("FOLDER", "VARIANT", "METHOD"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_variant(Path(args.run[0]), args.run[1], args.run[2])))
        return
    results: dict[tuple[str, int, str], dict[str, float]] = {}
    for rows in args.rows:
        folder = args.data / f"rows-{rows}"
        write_parts(folder, rows)
        for method in args.methods:
            runs: dict[str, list[dict[str, float]]] = {v: [] for v in args.variants}
            for _ in range(args.repeats):
                for variant in args.variants:
                    out = subprocess.run([sys.executable, __file__, "--run", str(folder),
                                          variant, method], check=True, capture_output=True,
                                         text=True)
                    runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
                    print(method, rows, variant, runs[variant][-1], flush=True)
            for variant, done in runs.items():
                median = sorted(done, key=lambda r: r["wall_s"])[len(done) // 2]
                results[(method, rows, variant)] = median
    if "streamed-centred" in args.variants and "streamed" in args.variants:
        for method in args.methods:
            for rows in args.rows:
                raw, cen = (results[(method, rows, "streamed")],
                            results[(method, rows, "streamed-centred")])
                print(f"{method} {rows:>9} rows: centred/raw wall "
                      f"{cen['wall_s'] / raw['wall_s']:.2f}x ({cen['wall_s']} vs "
                      f"{raw['wall_s']} s, medians of {args.repeats})")
    if not {"memory", "streamed"} <= set(args.variants):
        return
    small, large = min(args.rows), max(args.rows)
    for method in args.methods:
        for rows in args.rows:
            mem, st = results[(method, rows, "memory")], results[(method, rows, "streamed")]
            print(f"{method} {rows:>9} rows: streamed/memory wall "
                  f"{st['wall_s'] / mem['wall_s']:.2f}x, peak RSS "
                  f"{st['peak_rss_mb'] / mem['peak_rss_mb']:.2f}x "
                  f"({st['peak_rss_mb']:.0f} vs {mem['peak_rss_mb']:.0f} MB)")
        if large != small:
            for variant in ("memory", "streamed"):
                a, b = results[(method, small, variant)], results[(method, large, variant)]
                per_row = (b["wall_s"] / b["rows"]) / (a["wall_s"] / a["rows"])
                print(f"{method} {variant}: {large} over {small} rows: cost per row "
                      f"{per_row:.2f}x, peak RSS {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
