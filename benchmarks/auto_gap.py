"""Gap closed and average rank of each method in a benchmark folder (issue 14's measure).

For each dataset x budget cell (one learner, hard labels): the baseline is the better of
`kmeans` and `herding`; a method's gap closed is (method − baseline) / (full − baseline),
in %, and ranks are taken within the cell (1 = best; ties share the mean rank). With
`--runs`, the recipe `auto` chose in each cell is read from its runs' synthesize manifests.

    python benchmarks/auto_gap.py RUNS/<bench folder> --runs RUNS

Prints a Markdown table and the average rank per method.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def auto_choices(runs: Path, bench: str) -> dict[tuple[str, int], list[str]]:
    """(dataset, per_class) -> the recipe auto chose (one per run found)."""
    found: dict[tuple[str, int], list[str]] = defaultdict(list)
    for manifest in sorted(runs.glob(f"{bench}-*-auto-*pc-*/synthesize/manifest.json")):
        data = json.loads(manifest.read_text())
        block = data.get("auto") or (data.get("extra") or {}).get("auto")
        cfg = data["config"]
        dataset = manifest.parent.parent.name[len(bench) + 1:].split("-auto-")[0]
        if block:
            found[(dataset, cfg["synthesize"]["per_class"])].append(block["chosen"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir")
    parser.add_argument("--runs", default=None)
    parser.add_argument("--learner", default="linear_probe")
    args = parser.parse_args()
    bench_dir = Path(args.bench_dir)
    summary = json.loads((bench_dir / "summary.json").read_text())
    summary = summary["summary"] if isinstance(summary, dict) else summary
    rows = [s for s in summary if s["learner"] == args.learner and s["labels"] == "hard"]
    full = {s["dataset"]: s["accuracy_mean"] for s in rows if s["method"] == "full"}
    cells: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
    for s in rows:
        if s["method"] != "full":
            cells[(s["dataset"], s["per_class"])][s["method"]] = s
    bench = bench_dir.name.rsplit("-", 1)[0]
    choices = auto_choices(Path(args.runs), bench) if args.runs else {}
    methods = sorted({m for c in cells.values() for m in c})
    ranks: dict[str, list[float]] = defaultdict(list)
    print("| dataset | per class | " + " | ".join(methods) + " | full | auto chose | "
          + " | ".join(f"gap closed {m} %" for m in methods if m not in ("kmeans", "herding"))
          + " |")
    print("|---" * (4 + len(methods) + sum(m not in ("kmeans", "herding") for m in methods))
          + "|")
    for (dataset, budget), by_method in sorted(cells.items()):
        means = {m: by_method[m]["accuracy_mean"] for m in by_method}
        order = sorted(means, key=lambda m: -means[m])
        for m in order:  # mean rank among ties
            tied = [k for k in order if abs(means[k] - means[m]) < 1e-12]
            ranks[m].append(float(np.mean([order.index(k) + 1 for k in tied])))
        base = max(means.get("kmeans", -1), means.get("herding", -1))
        gap = full[dataset] - base
        cols = [f"{100 * by_method[m]['accuracy_mean']:.1f} ± "
                f"{100 * by_method[m]['accuracy_std']:.1f}" if m in by_method else "-"
                for m in methods]
        closed = [f"{100 * (means[m] - base) / gap:+.0f}" if m in means and gap > 0 else "-"
                  for m in methods if m not in ("kmeans", "herding")]
        chose = ", ".join(sorted(set(choices.get((dataset, budget), [])))) or "-"
        print(f"| {dataset} | {budget} | " + " | ".join(cols)
              + f" | {100 * full[dataset]:.1f} | {chose} | " + " | ".join(closed) + " |")
    print()
    print("average rank over " + f"{len(cells)} cells: " + ", ".join(
        f"{m} {np.mean(r):.2f}" for m, r in sorted(ranks.items(), key=lambda kv: np.mean(kv[1]))))


if __name__ == "__main__":
    main()
