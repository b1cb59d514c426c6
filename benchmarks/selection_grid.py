"""Quality of every selection method: the standard SST-2 grid with the evaluation harness.

For each method and budget (data per class) it runs the real pipeline stages
(ingest and signals come from the cache after the first run) with soft labels
attached, so each run reports hard-label and soft-label probes apart, next to
stratified random subsets and the full training split, over several seeds.

    python benchmarks/selection_grid.py --data-dir ../shared/datasets --runs-dir runs

Prints a markdown table (accuracy %, mean ± std over seeds) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from distill_core.artifacts.store import RunStore
from distill_core.config import load_config
from distill_core.pipeline.order import run_pipeline
from distill_core.pipeline.stage import StageContext
from tasks.executors import make_executor

ROOT = Path(__file__).resolve().parent.parent


def run_cell(config: str, overrides: list[str], runs_dir: str) -> dict:
    cfg = load_config(config, overrides)
    store = RunStore(runs_dir, cfg.run_id())
    run_pipeline(StageContext(cfg, store, make_executor(cfg.compute)))
    return {"run_dir": str(store.root),
            "synthesize_s": store.manifest("synthesize")["wall_time_s"],
            "summary": store.manifest("evaluate")["summary"]}


def cell(summary: list[dict], setting: str) -> str:
    entry = next((s for s in summary if s["setting"] == setting), None)
    if entry is None:
        return "-"
    return f"{100 * entry['accuracy_mean']:.1f} ± {100 * entry['accuracy_std']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--methods", default="random,kmeans,herding,kcenter_greedy,gradmatch,el2n")
    parser.add_argument("--budgets", default="5,10,20")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="Extra config override for every cell, e.g. teacher.temperature=0.5")
    parser.add_argument("--out", default="bench-out/selection_grid.json")
    args = parser.parse_args()
    base = [f"run.seeds=[{args.seeds}]", "synthesize.soft_labels=true", "run.name=grid",
            *args.overrides]
    if args.data_dir:
        base.append(f"data.data_dir={args.data_dir}")
    budgets = [int(b) for b in args.budgets.split(",")]
    results: dict[str, dict[int, dict]] = {}
    for method in args.methods.split(","):
        for budget in budgets:
            start = time.perf_counter()
            results.setdefault(method, {})[budget] = run_cell(
                args.config, base + [f"synthesize.method={method}",
                                     f"synthesize.per_class={budget}"], args.runs_dir)
            print(f"{method} {budget}/class: {time.perf_counter() - start:.1f}s", flush=True)
    header = ["method"] + [f"{b}/class hard" for b in budgets] + [f"{b}/class soft"
                                                                  for b in budgets]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    first = next(iter(results.values()))
    lines.append("| random subsets (baseline) | " + " | ".join(
        cell(first[b]["summary"], "random") for b in budgets) + " | " + " | ".join(
        "-" for _ in budgets) + " |")
    for method, by_budget in results.items():
        lines.append(f"| {method} | " + " | ".join(
            cell(by_budget[b]["summary"], "distilled") for b in budgets) + " | " + " | ".join(
            cell(by_budget[b]["summary"], "distilled_soft") for b in budgets) + " |")
    lines.append("| full training split | " + " | ".join(
        cell(first[b]["summary"], "full") for b in budgets) + " | " + " | ".join(
        "-" for _ in budgets) + " |")
    table = "\n".join(lines)
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"table": table, "results": results}, indent=2))


if __name__ == "__main__":
    main()
