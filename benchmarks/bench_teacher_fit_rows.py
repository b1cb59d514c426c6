"""How many training rows the linear-probe teacher needs: fitted on seeded class-stratified
samples of a large run's training split against the fit on all of it, the teacher's
p(label) on every training row compared, with the teacher-consistency filter's decisions.

The teacher stage holds its fit rows' features (float32, plus scikit-learn's float64 copy for
lbfgs): the fit rows set the stage's memory. This measures what a smaller fit changes in
what the stage writes, on a finished run (ingest and signals, read as the stage reads them).

    python benchmarks/bench_teacher_fit_rows.py RUN_DIR --sizes 50000,100000,200000,0

(0: every training row.) Prints a markdown table; one process, one fit at a time.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from distill_core.artifacts.store import RunStore  # noqa: E402
from distill_core.pipeline.inputs import POOL_SAMPLE_SEED, class_sample  # noqa: E402
from distill_core.pipeline.teacher_stream import fit_features, fit_rows  # noqa: E402
from distill_core.signals.teacher import class_logits, fit_teacher, softmax  # noqa: E402


def label_prob(model, x: np.ndarray, labels: np.ndarray, n_classes: int,
               chunk: int = 200_000) -> np.ndarray:
    out = np.empty(len(x), np.float64)
    for start in range(0, len(x), chunk):
        part = softmax(class_logits(model, x[start:start + chunk], n_classes))
        out[start:start + chunk] = part[np.arange(len(part)), labels[start:start + chunk]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="A run folder with ingest and signals.")
    parser.add_argument("--sizes", default="50000,100000,200000,0")
    parser.add_argument("--tau", type=float, default=0.5,
                        help="The teacher-consistency threshold (filter default 0.5).")
    parser.add_argument("--C", type=float, default=1.0)
    args = parser.parse_args()
    store = RunStore(args.run_dir.parent, args.run_dir.name)
    n_classes = len(store.manifest("ingest")["label_names"])
    every = fit_rows(store, limit=10**12)  # every training row: the reference fit
    x = fit_features(store, every)
    labels = every.labels
    print(f"{len(labels):,} training rows, {x.shape[1]} dims", flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    fits = {}
    for size in sizes:
        if size and size < len(labels):
            keep = class_sample(labels, size, 1, POOL_SAMPLE_SEED)
        else:
            keep = np.arange(len(labels))
        start = time.perf_counter()
        model = fit_teacher(x[keep], labels[keep], args.C)
        seconds = time.perf_counter() - start
        fits[size] = (model, seconds, len(keep))
        print(f"fit on {len(keep):,} rows: {seconds:.1f} s; maxrss "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB",
              flush=True)
    reference = label_prob(fits[0][0], x, labels, n_classes) if 0 in fits else None
    lines = ["| fit rows | fit s | mean p(label) | train accuracy | kept at tau | "
             "decisions changed vs all rows | mean abs. change of p(label) | max |",
             "|---|---|---|---|---|---|---|---|"]
    for size in sizes:
        model, seconds, rows = fits[size]
        p = label_prob(model, x, labels, n_classes)
        # binary: right when p(label) > 0.5 (the same as kept at tau 0.5)
        accuracy = float((p > 0.5).mean()) if n_classes == 2 else float("nan")
        kept = p >= args.tau
        if reference is not None:
            changed = int((kept != (reference >= args.tau)).sum())
            delta = np.abs(p - reference)
            diff = f"{changed:,} ({changed / len(p):.3%}) | {delta.mean():.5f} | {delta.max():.4f}"
        else:
            diff = "- | - | -"
        lines.append(f"| {rows:,} | {seconds:.1f} | {p.mean():.4f} | {accuracy:.4f} | "
                     f"{kept.mean():.4f} | {diff} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
