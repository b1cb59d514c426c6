"""Benchmark metrics per (dataset, learner, label mode, method, budget).

- accuracy and macro-F1: mean ± sample std over the cell's seeds;
- retention: mean accuracy ÷ the same learner's full-data accuracy;
- improvement over random: mean accuracy − random's mean accuracy at the same
  dataset, learner, label mode and budget (DD-Ranking's IOR);
- hard-label recovery (DD-Ranking's HLR): full-data hard-label accuracy −
  the distilled set's hard-label accuracy (lower is better: the gap the set
  leaves when it can only use hard labels);
- wall time (mean per cell) and peak memory (max over the cell's seeds).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from distill_core.bench.cells import FULL

GROUP_KEYS = ("dataset", "learner", "labels", "method", "per_class")


def _std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary row per group of cells, with the metrics above."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in GROUP_KEYS)].append(row)
    summary = {}
    for key, members in groups.items():
        acc = np.array([m["accuracy"] for m in members], dtype=np.float64)
        f1 = np.array([m["macro_f1"] for m in members], dtype=np.float64)
        summary[key] = {
            **dict(zip(GROUP_KEYS, key, strict=True)), "n": len(members),
            "accuracy_mean": float(acc.mean()), "accuracy_std": _std(acc),
            "macro_f1_mean": float(f1.mean()), "macro_f1_std": _std(f1),
            "wall_time_s_mean": float(np.mean([m["wall_time_s"] for m in members])),
            "peak_rss_mb_max": float(max(m["peak_rss_mb"] for m in members)),
            "n_train": int(members[0]["n_train"]),
        }
    for (dataset, learner, labels, method, per_class), entry in summary.items():
        full = summary.get((dataset, learner, "hard", FULL, None))
        hard = summary.get((dataset, learner, "hard", method, per_class))
        random = (summary.get((dataset, learner, labels, "random", per_class))
                  or summary.get((dataset, learner, "hard", "random", per_class)))
        full_acc = full["accuracy_mean"] if full else None
        entry["retention"] = (entry["accuracy_mean"] / full_acc
                              if full_acc and method != FULL else None)
        entry["improvement_over_random"] = (entry["accuracy_mean"] - random["accuracy_mean"]
                                            if random and method not in (FULL, "random")
                                            else None)
        entry["hard_label_recovery"] = (full_acc - hard["accuracy_mean"]
                                        if full_acc is not None and hard and method != FULL
                                        else None)
    order = {k: i for i, k in enumerate(groups)}
    return [summary[k] for k in sorted(summary, key=lambda k: order[k])]
