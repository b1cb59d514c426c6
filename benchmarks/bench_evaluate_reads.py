"""The evaluate stage's reads on a large finished run, this code against an earlier commit.

Times what the evaluate stage does on a run scored without the `full` baseline: the
streamed pool (`EvaluationData.streamed_from_store`, the evaluation split and the distilled
rows in one pass), the fit count, then every fit, whose random baselines each read their
draw and go through the run's filters. Each measurement runs in a fresh process (imports
inside the timed part are the stage's own), alternating the earlier commit (a git worktree)
and this tree, and counts the passes over the corpus (`corpus_where`). The scores of both
must be identical: the change is in how rows are read, not which.

    git worktree add /tmp/base <commit>
    python benchmarks/bench_evaluate_reads.py --run RUNS/<run> --baseline-tree /tmp/base \
        --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEASURE = """
import json, sys, time
from pathlib import Path
import distill_core.pipeline.inputs as inputs
from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.evaluate import EvaluationData, EvaluationPlan, count_fits, evaluate_selection
from distill_core.pipeline.stages.evaluate import baseline_filters
import distill_core.evaluate.streamed

passes = {"n": 0}
real = inputs.corpus_where
def counted(*args, **kwargs):
    passes["n"] += 1
    return real(*args, **kwargs)
for module in list(sys.modules.values()):  # every module that reads the corpus by that name
    if getattr(module, "__name__", "").startswith("distill_core") and \
            getattr(module, "corpus_where", None) is real:
        module.corpus_where = counted

run = Path(sys.argv[1])
store = RunStore(run.parent, run.name)
cfg = RunConfig.model_validate(store.manifest("evaluate")["config"])
if "full" in cfg.evaluate.baselines:
    raise SystemExit("this run's evaluation has the full baseline: it reads the whole split")
start = time.perf_counter()
data = EvaluationData.streamed_from_store(store, baseline_filters(cfg, store))
plan = EvaluationPlan.from_config(cfg)
total = count_fits(data, plan)
scores = evaluate_selection(data, plan, lambda _: None)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "passes": passes["n"], "fits": total,
                  "torch": "torch" in sys.modules,
                  "scores": scores.drop_columns(["wall_time_s"]).to_pylist()}))
"""


def measure(tree: Path, run: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, str(run)], cwd=tree,
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": str(tree)})
    if result.returncode != 0:
        raise SystemExit(f"{tree}: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run folder")
    parser.add_argument("--baseline-tree", type=Path, required=True,
                        help="a git worktree of the earlier commit")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": args.baseline_tree.resolve(), "now": ROOT}
    seen: dict[str, list[dict]] = {"before": [], "now": []}
    for round_ in range(args.rounds):
        order = ("before", "now") if round_ % 2 == 0 else ("now", "before")
        for name in order:
            seen[name].append(measure(trees[name], args.run.resolve()))
            last = seen[name][-1]
            print(f"round {round_ + 1} {name}: {last['seconds']:.2f} s, {last['passes']} "
                  f"passes, torch imported: {last['torch']}", flush=True)
    same = all(m["scores"] == seen["before"][0]["scores"] for ms in seen.values() for m in ms)
    before = statistics.median(m["seconds"] for m in seen["before"])
    now = statistics.median(m["seconds"] for m in seen["now"])
    print(f"| median s before | median s now | ratio | passes before | passes now | fits | "
          f"same scores |\n|---|---|---|---|---|---|---|\n| {before:.2f} | {now:.2f} | "
          f"{before / now:.2f}x | {seen['before'][0]['passes']} | {seen['now'][0]['passes']} "
          f"| {seen['now'][0]['fits']} | {'yes' if same else 'NO'} |")
    if not same:
        raise SystemExit("the scores differ between the two trees")


if __name__ == "__main__":
    main()
