"""Two commits through the scale benchmark side by side, in one run: the same corpora, the
same static encoder, one run of each commit per size, in turn; peak RSS and wall time per
stage reported as ratios, and the outputs compared (the candidate sets and the score tables
must be equal when the change is not meant to change them).

Each commit is checked out as a git worktree under `--work`; `benchmarks/bench_scale.py` of
that worktree runs its flow (its `PYTHONPATH` is its own tree), with this interpreter. The
corpora and the distilled static encoder are built once, by the baseline's run, and linked
into the candidate's folder (`--skip-build`).

    python benchmarks/bench_scale_pair.py --baseline 81ab099 --candidate HEAD --sizes 1m \
        --runs auto --data-dir ../shared/datasets --work /tmp/pair
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("ingest", "signals", "teacher", "clean", "synthesize", "filter", "evaluate")


def worktree(commit: str, folder: Path) -> str:
    """`commit` checked out (detached) at `folder`; its full hash."""
    full = subprocess.run(["git", "rev-parse", commit], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    if folder.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT,
                       check=False, capture_output=True)
    subprocess.run(["git", "worktree", "add", "--detach", "--force", str(folder), full],
                   cwd=ROOT, check=True, capture_output=True)
    return full


def run_scale(tree: Path, work: Path, args: argparse.Namespace, skip_build: bool
              ) -> dict[str, Any]:
    command = [sys.executable, str(tree / "benchmarks" / "bench_scale.py"), "--sizes",
               args.sizes, "--minilm-rows", "0", "--runs", args.runs, "--data-dir",
               str(Path(args.data_dir).resolve()), "--work", str(work)]
    subprocess.run(command + (["--skip-build"] if skip_build else []), cwd=tree, check=True)
    return json.loads((work / "results.json").read_text())


RUNNER = ("bench_scale.py", "scale_corpus.py", "scale_monitor.py")


def same_runner(source: Path, target: Path) -> None:
    """The scale benchmark's own scripts of `source` copied over `target`'s, so both commits
    are measured by one runner (a run kind the baseline's scripts do not know); the code
    measured stays each commit's own."""
    for name in RUNNER:
        (target / "benchmarks" / name).write_bytes((source / "benchmarks" / name).read_bytes())


def link_inputs(built: Path, work: Path) -> None:
    """The baseline's corpora and static encoder, linked into the candidate's folder."""
    work.mkdir(parents=True, exist_ok=True)
    for source in built.iterdir():
        if source.name.startswith("corpus-") or source.name == "static-cache":
            target = work / source.name
            if not target.exists():
                target.symlink_to(source, target_is_directory=True)


def stage_table(run_dir: Path, stage: str) -> pa.Table:
    parts = sorted((run_dir / stage / "data").glob("*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts])


def same_outputs(first: Path, second: Path) -> dict[str, bool]:
    """Whether the two runs' teacher rows and cleaned corpus (when both have them), candidate
    sets, distilled sets and score tables (all but the learners' wall time) are equal."""
    same = {stage: stage_table(first, stage).equals(stage_table(second, stage))
            for stage in ("teacher", "clean", "synthesize", "filter")
            if (first / stage).is_dir() and (second / stage).is_dir()}
    scores = [stage_table(run, "evaluate").drop_columns(["wall_time_s"])
              for run in (first, second)]
    return {**same, "evaluate": scores[0].equals(scores[1])}


def ratio(new: float, old: float) -> str:
    return f"{new / old:.2f}x" if old else "-"


def computed(run: dict[str, Any], stage: str) -> bool:
    """Whether the run computed `stage` (not absent, not restored from the cache)."""
    return "wall_s" in run["stages"].get(stage, {})


def compare(base: dict[str, Any], cand: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for old_size, new_size in zip(base["sizes"], cand["sizes"], strict=True):
        for name, old in old_size["runs"].items():
            new = new_size["runs"][name]
            row = {"rows": old_size["rows"], "run": name,
                   "wall_s": (old["wall_s"], new["wall_s"]),
                   "peak_tree_rss_mb": (old["peak_tree_rss_mb"], new["peak_tree_rss_mb"]),
                   "main_maxrss_mb": (old["main_maxrss_mb"], new["main_maxrss_mb"]),
                   "peak_at": (old["peak_at"], new["peak_at"]),
                   "stages": {s: {k: (old["stages"][s][k], new["stages"][s][k])
                                  for k in ("wall_s", "peak_rss_mb")}
                              for s in STAGES if computed(old, s) and computed(new, s)},
                   "same_outputs": same_outputs(Path(old["run_dir"]), Path(new["run_dir"]))}
            rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| rows | run | stage | wall s (base → new) | peak tree RSS MB (base → new) |",
             "|---|---|---|---|---|"]
    for row in rows:
        for stage, figures in row["stages"].items():
            (w0, w1), (m0, m1) = figures["wall_s"], figures["peak_rss_mb"]
            lines.append(f"| {row['rows']:,} | {row['run']} | {stage} | {w0:.1f} → {w1:.1f} "
                         f"({ratio(w1, w0)}) | {m0:,.0f} → {m1:,.0f} ({ratio(m1, m0)}) |")
        (w0, w1), (m0, m1) = row["wall_s"], row["peak_tree_rss_mb"]
        lines.append(f"| {row['rows']:,} | {row['run']} | whole run | {w0:.1f} → {w1:.1f} "
                     f"({ratio(w1, w0)}) | {m0:,.0f} → {m1:,.0f} ({ratio(m1, m0)}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--candidate", default="HEAD")
    parser.add_argument("--sizes", default="1m")
    parser.add_argument("--runs", default="auto")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--same-runner", action="store_true",
                        help="Run both commits with the candidate's scale benchmark scripts "
                             "(for a run kind that the baseline's do not have).")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    commits = {side: worktree(commit, args.work / f"tree-{side}")
               for side, commit in (("baseline", args.baseline), ("candidate", args.candidate))}
    if args.same_runner:
        same_runner(args.work / "tree-candidate", args.work / "tree-baseline")
    base = run_scale(args.work / "tree-baseline", args.work / "baseline", args, False)
    link_inputs(args.work / "baseline", args.work / "candidate")
    cand = run_scale(args.work / "tree-candidate", args.work / "candidate", args, True)
    rows = compare(base, cand)
    result = {"commits": commits, "argv": sys.argv, "rows": rows}
    (args.work / "pair.json").write_text(json.dumps(result, indent=1))
    print(markdown(rows))
    for row in rows:
        print(f"{row['rows']:,} {row['run']}: outputs equal {row['same_outputs']}; peak at "
              f"{[p['where'] for p in row['peak_at']]}, main/others MB "
              f"{[(p['main_mb'], p['others_mb']) for p in row['peak_at']]}")
    print(f"results: {args.work / 'pair.json'}")


if __name__ == "__main__":
    main()
