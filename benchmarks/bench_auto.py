"""Cost of `synthesize.method: auto` against `kmeans` (the default) on a whole corpus.

Runs the pipeline to the synthesize stage for each method, side by side and alternating
(kmeans, auto, kmeans, auto, ...), each in a run of its own in one runs folder, so ingest
and the embeddings come from the folder's caches and only the synthesize stage is new work.
The figure is the synthesize stage's wall time from its manifest; for `auto` it splits
into the cross-validation and the chosen recipe's run on the whole pool.

    python benchmarks/bench_auto.py --runs RUNS --data-dir /work/shared/datasets \
        --dataset sst2 --per-class 10 --repeats 2

Prints one line per run, then the medians and the ratio auto / kmeans. With
`--cv-workers 1 2`, auto runs once per value in each repeat (`compute.cv_workers`: the
cross-validation's folds in this process, or in that many worker processes), and each
variant gets its median and ratio; the auto runs' picks must be the same.

    python benchmarks/bench_auto.py --write-sst2-sample bench-data/sst2-10k \
        --data-dir /work/shared/datasets

writes the SST-2 sample `configs/bench-auto.yaml` reads instead (a seeded random 10,000 of
the training rows, the whole validation split) and exits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill_core.artifacts.store import RunStore  # noqa: E402
from distill_core.config import load_config  # noqa: E402
from distill_core.pipeline.order import run_pipeline  # noqa: E402
from distill_core.pipeline.stage import StageContext  # noqa: E402
from tasks.executors import make_executor  # noqa: E402


def synthesize_once(runs: Path, data_dir: str, dataset: str, method: str, per_class: int,
                    repeat: int, seeds: list[int], cv_workers: int | None = None) -> dict:
    workers = [] if cv_workers is None else [f"compute.cv_workers={cv_workers}"]
    name = f"bench-auto-{method}-r{repeat}" + ("" if cv_workers is None else f"-w{cv_workers}")
    cfg = load_config(None, [f"data.data_dir={data_dir}", f"data.dataset={dataset}",
                             f"run.name={name}", f"run.seeds={seeds}",
                             f"synthesize.method={method}", f"synthesize.per_class={per_class}",
                             *workers])
    store = RunStore(runs, cfg.run_id())
    run_pipeline(StageContext(cfg, store, make_executor(cfg.compute, cfg.faults)), "synthesize")
    manifest = store.manifest("synthesize")
    auto = manifest.get("auto") or {}
    picks = store.read("synthesize", columns=["example_id"]).column("example_id").to_pylist()
    label = method if cv_workers is None else f"{method}-w{cv_workers}"
    return {"method": label, "repeat": repeat, "seconds": manifest["wall_time_s"],
            "cv_workers": auto.get("cv_workers"),
            "picks_sha256": hashlib.sha256("\n".join(picks).encode()).hexdigest()[:16],
            "peak_rss_mb": manifest.get("peak_rss_mb"), "cv_seconds": auto.get("cv_seconds"),
            "final_seconds": auto.get("final_seconds"), "chosen": auto.get("chosen"),
            "pool_rows": auto.get("protocol", {}).get("pool_rows"),
            "scores": {k: round(100 * v["mean"], 1) for k, v in auto.get("scores", {}).items()}}


def write_sst2_sample(data_dir: Path, target: Path, rows: int = 10_000, seed: int = 0) -> None:
    """GLUE SST-2 laid out as in `data_dir`, its training file cut to `rows` random rows."""
    import numpy as np

    (target / "sst2_glue").mkdir(parents=True, exist_ok=True)
    head, *body = (data_dir / "sst2_glue" / "train.tsv").read_bytes().splitlines(keepends=True)
    keep = np.sort(np.random.default_rng(seed).choice(len(body), rows, replace=False))
    (target / "sst2_glue" / "train.tsv").write_bytes(head + b"".join(body[i] for i in keep))
    (target / "sst2_glue" / "dev.tsv").write_bytes(
        (data_dir / "sst2_glue" / "dev.tsv").read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs")
    parser.add_argument("--write-sst2-sample", type=Path, default=None)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dataset", default="sst2")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seeds", default="[0,1,2]")
    parser.add_argument("--out", default="bench-out/auto_cost.json")
    parser.add_argument("--cv-workers", type=int, nargs="*", default=None,
                        help="auto once per value (compute.cv_workers) in each repeat")
    args = parser.parse_args()
    if args.write_sst2_sample is not None:
        write_sst2_sample(Path(args.data_dir), args.write_sst2_sample)
        return
    seeds = json.loads(args.seeds)
    results = []
    variants = [("kmeans", None)] + [("auto", w) for w in (args.cv_workers or [None])]
    for repeat in range(args.repeats):
        for method, workers in variants:
            row = synthesize_once(Path(args.runs), args.data_dir, args.dataset, method,
                                  args.per_class, repeat, seeds, workers)
            results.append(row)
            print(json.dumps(row), flush=True)
    labels = list(dict.fromkeys(r["method"] for r in results))
    medians = {m: statistics.median(r["seconds"] for r in results if r["method"] == m)
               for m in labels}
    auto_picks = {r["picks_sha256"] for r in results if r["method"].startswith("auto")}
    summary = {"dataset": args.dataset, "per_class": args.per_class, "seeds": seeds,
               "median_seconds": medians,
               "ratio_over_kmeans": {m: round(medians[m] / medians["kmeans"], 2)
                                     for m in labels if m != "kmeans"},
               "auto_picks_identical": len(auto_picks) == 1, "runs": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))


if __name__ == "__main__":
    main()
