"""The static table fitted to the encoder (`signals.static_fit`) against the distilled one.

Two questions, on each dataset's corpus read and embedded through the real signals stage
(cached in --runs-dir):
1. Does the fit generalise? The first `--rows` training texts are the sample; the last
   2,000 training texts are never in it. Mean cosine between the static vectors and MiniLM's
   on those texts: the least-squares mapped table, the fit without the pull to it (l2 = 0)
   and the fit with each --l2 value.
2. Does it select better? k-means and herding, N per class, 3 seeds, on MiniLM's features,
   the distilled static table's (centred, its default) and the fitted tables' (raw, their
   default), at the default sample size and at --small-rows (so that most of a small
   corpus's pool is outside the sample); one learner scores every selection, a linear probe
   (C = 1) on MiniLM features, on a training holdout (--holdout rows per seed, the pool is
   the rest: defaults are chosen on this) and on the evaluation split (chooses nothing).

    python benchmarks/bench_static_fit.py --data-dir ../shared/datasets --runs-dir runs \
        --datasets sst2,ag_news,sst5_kim
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_center_features import scores  # noqa: E402
from benchmarks.bench_static_encoder import (  # noqa: E402
    DISTILLED,
    MINILM,
    STATIC,
    signals_run,
    split_arrays,
)
from distill_core.signals.static_encoder import StaticEncoder, static_model_dir  # noqa: E402
from distill_core.signals.static_fit import FitSettings, fit_table, pooling_matrix  # noqa: E402

UNSEEN = 2000  # last training texts, never in a sample


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def texts_of(store, ids: list[str]) -> list[str]:
    corpus = store.read("ingest", columns=["example_id", "text"])
    text = dict(zip(corpus.column("example_id").to_pylist(), corpus.column("text").to_pylist(),
                    strict=True))
    return [text[i] for i in ids]


def generalisation(dataset: str, args: argparse.Namespace) -> list[dict]:
    """Cosine to MiniLM on the last UNSEEN training texts, for each fit of the first rows."""
    store = signals_run(dataset, MINILM, args.data_dir, args.runs_dir)
    x, _, ids = split_arrays(store)["train"]
    texts = texts_of(store, ids)
    encoder = StaticEncoder(static_model_dir(STATIC, Path(args.runs_dir) / ".cache"))
    rows = min(args.rows, len(texts) - UNSEEN)
    if rows < 1:
        raise SystemExit(f"{dataset}: {len(texts)} training texts, fewer than the {UNSEEN} "
                         "held out of every sample")
    held = pooling_matrix(encoder, texts[-UNSEEN:])
    out = []
    for name, steps, lr, l2 in [("mapped (least squares only)", 1, 1e-12, 0.0),
                                ("fitted, l2 = 0", args.steps, 0.01, 0.0),
                                *[(f"fitted, l2 = {v}", args.steps, 0.01, v) for v in args.l2]]:
        started = time.perf_counter()
        table, account = fit_table(encoder, texts[:rows], x[:rows],
                                   FitSettings(rows, steps, lr, l2))
        unseen = float((_unit(np.asarray(held @ table)) * _unit(x[-UNSEEN:])).sum(1).mean())
        row = {"dataset": dataset, "fit": name, "sample_rows": rows,
               "sample_cosine": account["cosine_fitted"], "unseen_cosine": round(unseen, 4),
               "fit_s": round(time.perf_counter() - started, 1)}
        out.append(row)
        print(f"| {dataset} | {rows:,} | {name} | {row['sample_cosine']:.4f} | "
              f"{row['unseen_cosine']:.4f} | {row['fit_s']} |", flush=True)
    return out


def selection(dataset: str, args: argparse.Namespace) -> list[dict]:
    minilm = split_arrays(signals_run(dataset, MINILM, args.data_dir, args.runs_dir))
    variants = [("MiniLM", MINILM, (), False), ("static distilled", STATIC, DISTILLED, True),
                ("static fitted (default rows)", STATIC, (), False),
                (f"static fitted ({args.small_rows} rows)", STATIC,
                 (f"signals.static_fit.rows={args.small_rows}",), False)]
    out = []
    for name, model, extra, center in variants:
        started = time.perf_counter()
        features = split_arrays(signals_run(dataset, model, args.data_dir, args.runs_dir,
                                            extra=extra))["train"][0]
        signals_s = time.perf_counter() - started
        for method in args.methods.split(","):
            on_eval, held = scores(method, features, center, minilm["train"], minilm["eval"],
                                   args.per_class, args.seeds, args.holdout)
            row = {"dataset": dataset, "method": method, "features": name, "centred": center,
                   "holdout": held, "eval": on_eval, "signals_s": round(signals_s, 1)}
            out.append(row)
            print(f"| {dataset} | {method} | {name} | {'yes' if center else 'no'} | "
                  f"{100 * np.mean(held):.1f} ± {100 * np.std(held):.1f} | "
                  f"{100 * np.mean(on_eval):.1f} ± {100 * np.std(on_eval):.1f} |", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--datasets", default="sst2,ag_news,sst5_kim")
    parser.add_argument("--methods", default="herding,kmeans")
    parser.add_argument("--rows", type=int, default=20_000, help="generalisation: sample")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--l2", type=float, nargs="*", default=[0.01, 0.03, 0.05, 0.1, 0.3])
    parser.add_argument("--small-rows", type=int, default=2000)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--holdout", type=int, default=2000)
    parser.add_argument("--skip", default="", help="generalisation or selection")
    parser.add_argument("--out", default="bench-out/static_fit.json")
    args = parser.parse_args()
    report: dict[str, list] = {"generalisation": [], "selection": []}
    if "generalisation" not in args.skip:
        print("| dataset | sample rows | table | cosine on the sample | cosine on 2,000 unseen "
              "training texts | fit s |\n|---|---|---|---|---|---|")
        for dataset in args.datasets.split(","):
            report["generalisation"] += generalisation(dataset, args)
    if "selection" not in args.skip:
        print("| dataset | method | features | centred | training holdout | evaluation split |"
              "\n|---|---|---|---|---|---|")
        for dataset in args.datasets.split(","):
            report["selection"] += selection(dataset, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
