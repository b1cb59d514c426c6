"""What drawing from a sample of the pool costs the methods that hold the pool in memory.

Above `IN_MEMORY_POOL_ROWS` pool rows, a selection method that holds the pool (auto's
recipes but plain kmeans, herding and random; span_pursuit, bilevel, learned labels or
weights) draws from a seeded, class-stratified sample of that many rows. No corpus here is
large enough to measure that at the real limit (1,000,000 rows), so this sets the limit
lower and measures the same thing on real corpora: for each dataset, the whole pipeline in
process once per limit (`--limits`, `0` for none: the whole pool), every run in one runs
folder under its own `run.name`, so ingest and the embeddings come from the folder's stage
cache after the first run. Prints one line per run (JSON): the distilled set's accuracy on
the evaluation split, mean and std over the seeds (the `+soft` row where the set carries
learned labels, as the report headlines it), the full-data probe, the method's choice, the
sample, the synthesize stage's seconds; then a Markdown table.

    python benchmarks/bench_pool_sample.py --data-dir ../shared/datasets --runs RUNS \
        --datasets sst2 ag_news sst5_kim --limits 0 20000 5000 2000 --seeds 0 1 2 --per-class 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill_core.artifacts.store import RunStore  # noqa: E402
from distill_core.config import load_config  # noqa: E402
from distill_core.pipeline import inputs  # noqa: E402
from distill_core.pipeline.order import run_pipeline  # noqa: E402
from distill_core.pipeline.stage import StageContext  # noqa: E402
from tasks.executors import make_executor  # noqa: E402


def one_run(runs: Path, data_dir: str, dataset: str, method: str, per_class: int,
            seeds: list[int], limit: int) -> dict:
    """The pipeline with the in-memory limit at `limit` (0: no sample), and what it scored."""
    inputs.IN_MEMORY_POOL_ROWS = limit or 10**12
    cfg = load_config(None, [f"data.data_dir={data_dir}", f"data.dataset={dataset}",
                             f"run.name=pool-{dataset}-{limit}", f"run.seeds={seeds}",
                             f"synthesize.method={method}", f"synthesize.per_class={per_class}",
                             "evaluate.baselines=[full]"])
    store = RunStore(runs, cfg.run_id())
    run_pipeline(StageContext(cfg, store, make_executor(cfg.compute, cfg.faults)))
    synthesize = store.manifest("synthesize")
    rows = {row["setting"]: row for row in store.manifest("evaluate")["summary"]}
    distilled = rows.get("distilled_soft") or rows["distilled"]
    return {"dataset": dataset, "limit": limit, "method": method, "per_class": per_class,
            "accuracy": round(100 * distilled["accuracy_mean"], 2),
            "std": round(100 * distilled["accuracy_std"], 2),
            "scored": distilled["method"], "full": round(100 * rows["full"]["accuracy_mean"], 2),
            "chosen": (synthesize.get("auto") or {}).get("chosen"),
            "sample": synthesize["selection"].get("pool_sample"),
            "pool_rows": synthesize["counts"]["rows_in"] // len(seeds),
            "synthesize_s": synthesize["wall_time_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "sst5_kim"])
    parser.add_argument("--limits", nargs="+", type=int, default=[0, 20_000, 5_000, 2_000])
    parser.add_argument("--method", default="auto")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    results = []
    for dataset in args.datasets:
        for limit in args.limits:
            result = one_run(args.runs, args.data_dir, dataset, args.method, args.per_class,
                             args.seeds, limit)
            print(json.dumps(result), flush=True)
            results.append(result)
    print("\n| dataset | pool rows | sample | chosen | accuracy | full | synthesize s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        sample = f"{r['sample']['rows']:,}" if r["sample"] else "whole pool"
        print(f"| {r['dataset']} | {r['pool_rows']:,} | {sample} | {r['chosen'] or r['method']} "
              f"| {r['accuracy']:.1f} ± {r['std']:.1f} | {r['full']:.1f} | "
              f"{r['synthesize_s']:.1f} |")


if __name__ == "__main__":
    main()
