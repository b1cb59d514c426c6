"""Selection speed on a whole corpus: every method, one seed, all classes, from a run's artifacts.

Reads the corpus, embeddings and teacher signals of a finished run (e.g. the
quickstart's, 67k SST-2 rows) and times each selector at the largest budget,
next to the teacher fit that the teacher-based methods need (done once per
corpus and cached).

    python benchmarks/bench_selection.py RUN_DIR --budget 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from distill_core.artifacts.store import RunStore
from distill_core.signals.embeddings import features, split_features
from distill_core.signals.teacher import fit_teacher, teacher_signals
from distill_core.synthesize.base import SELECTORS, ClassData, select_per_class
from distill_core.synthesize.stage import select_candidates  # noqa: F401 (registers methods)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench-out/selection_speed.json")
    args = parser.parse_args()
    store = RunStore.open(args.run_dir)
    corpus, embeddings = store.read("ingest"), store.read("signals")
    train, x = split_features(corpus, embeddings, "train")
    labels = train.column("label_id").to_numpy()
    n_classes = int(labels.max()) + 1
    start = time.perf_counter()
    teacher = fit_teacher(x, labels)
    signals = teacher_signals(teacher, x, labels, n_classes)
    timings = {"teacher_fit_and_signals": time.perf_counter() - start}
    assert features(embeddings).shape[0] == corpus.num_rows
    for method, spec in SELECTORS.items():
        params = {"kmeans": {"n_init": 3}}.get(method, {})
        start = time.perf_counter()
        picked = select_per_class(method, ClassData(x, signals.grad_logits, signals.el2n),
                                  labels, args.budget, args.seed, params)
        timings[method] = time.perf_counter() - start
        assert np.bincount(labels[picked.indices]).tolist() == [args.budget] * n_classes
        print(f"{method:>15}: {timings[method]:6.2f} s"
              + ("  (+ teacher)" if spec.needs_teacher else ""), flush=True)
    report = {"rows": int(len(x)), "dim": int(x.shape[1]), "classes": n_classes,
              "budget_per_class": args.budget, "seconds": timings}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
