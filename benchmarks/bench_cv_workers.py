"""When do `auto`'s fold workers pay for their start? Cross-validation wall time, folds in
process against folds in worker processes, by the number of rows the cross-validation reads.

Each measurement is a fresh Python process, as a `textdistill run` is: the worker processes
start cold in it (each imports numpy, scikit-learn and the selectors), which is what the
workers cost a small pool. For each pool size N, a seeded stratified sample of N training
rows of a finished run's signals (MiniLM features) goes through `auto`'s cross-validation
with the default settings for the quickstart's budget; `1` and `2` workers alternate, and
the picked recipe and its fold accuracies must agree.

    python benchmarks/bench_cv_workers.py --run RUN_DIR [--run RUN_DIR ...] \
        --sizes 300 1000 2000 4000 --per-class 10 --repeats 2

Prints one line per measurement, then a table of medians and the ratio in process / workers
(above 1: the workers are faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def _sample(run: str, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features and label ids of a stratified seeded sample of `rows` training rows."""
    import pyarrow.compute as pc

    from distill_core.artifacts.store import RunStore
    from distill_core.signals.embeddings import matrix
    from distill_core.synthesize.auto_cv import stratified_subsample

    store = RunStore.open(run)
    ingest = store.read("ingest", columns=["example_id", "split", "label_id"])
    signals = store.read("signals", columns=["example_id", "split", "embedding"])
    train = signals.filter(pc.equal(signals.column("split"), "train"))
    labels = dict(zip(ingest.column("example_id").to_pylist(),
                      ingest.column("label_id").to_pylist(), strict=True))
    y = np.array([labels[e] for e in train.column("example_id").to_pylist()])
    keep = stratified_subsample(y, seed, rows)
    return matrix(train.take(keep)), y[keep]


def measure_one(run: str, rows: int, workers: int, per_class: int) -> dict:
    """One cross-validation in this process: wall seconds, the choice and its accuracies."""
    from distill_core.config import load_config
    from distill_core.methods.auto import probe_accuracy, settings_for, teacher_p_label
    from distill_core.synthesize.auto_cv import cross_validate
    from distill_core.synthesize.fold_workers import fold_map, worker_settings

    x, y = _sample(run, rows, seed=0)
    n_classes = int(y.max()) + 1
    cfg = load_config(None, [f"synthesize.per_class={per_class}", "synthesize.method=auto"])
    settings, _ = settings_for(cfg, len(y), n_classes)
    start = time.perf_counter()
    choice = cross_validate(y, lambda rows_: x[rows_], worker_settings(settings, workers), 0,
                            probe_accuracy(cfg, n_classes), teacher_p_label(cfg, n_classes),
                            fold_map(workers))
    seconds = time.perf_counter() - start
    block = choice.manifest()
    return {"run": Path(run).name, "rows": rows, "workers": workers,
            "seconds": round(seconds, 3), "chosen": block["chosen"],
            "accuracies": block["scores"][block["chosen"]]["accuracies"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="a finished run folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 2000, 4000])
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", nargs=2, type=int, metavar=("ROWS", "WORKERS"),
                        help=argparse.SUPPRESS)  # one measurement of --run, in a child process
    args = parser.parse_args()
    if args.one:
        rows, workers = args.one
        print(json.dumps(measure_one(args.run[0], rows, workers, args.per_class)))
        return
    results = []
    for run in args.run:
        for rows in args.sizes:
            for _ in range(args.repeats):
                for workers in (1, 2):
                    out = subprocess.run(
                        [sys.executable, __file__, "--run", run, "--one", str(rows), str(workers),
                         "--per-class", str(args.per_class)],
                        capture_output=True, text=True, check=True)
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    print(json.dumps(result), flush=True)
                    results.append(result)
    print("\n| run | CV rows | in process s | 2 workers s | in process / workers | same choice |")
    print("|---|---|---|---|---|---|")
    for run in args.run:
        name = Path(run).name
        for rows in args.sizes:
            cell = [r for r in results if r["run"] == name and r["rows"] == rows]
            one = [r["seconds"] for r in cell if r["workers"] == 1]
            two = [r["seconds"] for r in cell if r["workers"] == 2]
            same = len({(r["chosen"], tuple(r["accuracies"])) for r in cell}) == 1
            print(f"| {name} | {rows} | {statistics.median(one):.1f} | "
                  f"{statistics.median(two):.1f} | "
                  f"{statistics.median(one) / statistics.median(two):.2f} | "
                  f"{'yes' if same else 'no'} |")


if __name__ == "__main__":
    main()
