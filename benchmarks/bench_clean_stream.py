"""The corpus clean stage on a large finished run, this code against an earlier commit.

`filter.corpus` is on by default for `synthesize.method: auto` and for learned labels or
weights, so the clean stage runs the filters over every training row before selection.
This runs that stage alone on a finished run's corpus, in a fresh process per measurement
(alternating the earlier commit, a git worktree, and this tree): each process loads the
run's own config under a new `run.name`, restores ingest and signals (and the teacher, if
the filters read it) from the runs folder's cross-run cache and computes `clean`. It prints
the stage's wall time, the process's peak RSS (`ru_maxrss`, read as the stage ends, before
the checks below read its output back) and the RSS when the stage began, and checks that
both trees keep the same rows in the same order and reject the same rows for the same
reasons (compared as sha256 digests).

    git worktree add /tmp/base <commit>
    python benchmarks/bench_clean_stream.py --run RUNS/<run> --baseline-tree /tmp/base \
        --rounds 2

`--set key=value` changes the run's config for both trees (e.g. `filter.near_dedup.enabled=
true`: a filter the run did not have); when the change is meant to change what a filter keeps,
the rows compared are reported, not required equal.
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
import hashlib, json, resource, shutil, sys, time
from pathlib import Path
from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.pipeline.order import run_pipeline
from distill_core.pipeline.stage import StageContext
from tasks.executors import make_executor

run, name = Path(sys.argv[1]), sys.argv[2]
config = RunStore(run.parent, run.name).manifest("clean")["config"]
config["run"]["name"] = name
for item in json.loads(sys.argv[3]):  # --set key=value, dotted keys, YAML-free values
    key, value = item.split("=", 1)
    *path, last = key.split(".")
    node = config
    for part in path:
        node = node[part]
    node[last] = json.loads(value)
cfg = RunConfig.model_validate(config)
store = RunStore(run.parent, cfg.run_id())
shutil.rmtree(store.root, ignore_errors=True)  # an earlier invocation's: measure afresh
store = RunStore(run.parent, cfg.run_id())
ctx = StageContext(cfg, store, make_executor(cfg.compute, cfg.faults))
from distill_core.pipeline.stages.teacher import needs_teacher
for upstream in ("ingest", "signals") + (("teacher",) if needs_teacher(cfg) else ()):
    run_pipeline(ctx, upstream)  # restored from the runs folder's cache (teacher: computed)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with open("/proc/self/status") as status:
    rss = next(int(l.split()[1]) for l in status if l.startswith("VmRSS")) / 1024
start = time.perf_counter()
run_pipeline(ctx, "clean")
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the checks' reads
manifest = store.manifest("clean")
kept = store.read("clean").column("example_id").to_pylist()
rejects = sorted((r["example_id"], r["reason"], r["detail"])
                 for r in store.read("clean", rejects=True).to_pylist())
digest = lambda rows: hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]
print(json.dumps({"seconds": seconds, "peak_mb": peak, "rss_before_mb": rss,
    "peak_before_mb": before, "kept": len(kept), "kept_sha": digest(kept),
    "rejects": len(rejects), "rejects_sha": digest(rejects),
    "streamed": manifest.get("streamed"), "filters": manifest["filters"]}))
"""


def measure(tree: Path, run: Path, name: str, sets: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", MEASURE, str(run), name, json.dumps(sets)],
                         cwd=tree, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{tree}: exit {out.returncode}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run's folder "
                        "(with a clean stage) in its runs folder")
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="a git worktree of the commit to compare with (none: this tree "
                             "alone, e.g. where the baseline would not fit in memory)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="key=value (a JSON value) changed in the run's config, both trees")
    args = parser.parse_args()
    trees = [("this", ROOT)]
    if args.baseline_tree is not None:
        trees.insert(0, ("baseline", args.baseline_tree.resolve()))
    results: dict[str, list[dict]] = {label: [] for label, _ in trees}
    for round_ in range(args.rounds):
        for label, tree in trees:
            result = measure(tree, args.run.resolve(), f"cleanbench-{label}-{round_}",
                             args.sets)
            print(json.dumps({"tree": label, "round": round_} | {
                k: v for k, v in result.items() if k != "filters"}), flush=True)
            results[label].append(result)
    this = results["this"]
    base = results.get("baseline") or this
    same = all(r[k] == base[0][k] for r in base + this for k in ("kept_sha", "rejects_sha"))
    same_filters = all(r["filters"] == base[0]["filters"] for r in base + this)

    def median(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print("\n| tree | clean s (median) | peak RSS MB | RSS before the stage MB |")
    print("|---|---|---|---|")
    for label, rows in results.items():
        print(f"| {label} | {median(rows, 'seconds'):.1f} | {median(rows, 'peak_mb'):,.0f} | "
              f"{median(rows, 'rss_before_mb'):,.0f} |")
    for label, rows in results.items():
        print(f"{label}: kept {rows[0]['kept']:,}, rejected {rows[0]['rejects']:,}; per filter "
              f"{[(f['filter'], f['rows_rejected']) for f in rows[0]['filters']]}")
    if "baseline" not in results:
        return
    print(f"\ntime ratio (baseline / this): "
          f"{median(base, 'seconds') / median(this, 'seconds'):.2f}x; peak RSS ratio: "
          f"{median(base, 'peak_mb') / median(this, 'peak_mb'):.2f}x; same rows kept and "
          f"rejected for the same reasons: {same}; same per-filter counts: {same_filters}")


if __name__ == "__main__":
    main()
