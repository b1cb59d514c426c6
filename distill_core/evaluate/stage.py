"""The evaluate stage: the distilled sets against random subsets and the full split.

For each seed's distilled set (replicate), a probe is trained and scored; the
`random` baseline draws one stratified random subset per seed at the same
budget; `full` trains once on the whole training split (deterministic, n=1).
`summarize_scores` gives mean ± std (sample std, ddof=1) per setting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.evaluate.linear_probe import ProbeScore, linear_probe
from distill_core.evaluate.soft_probe import soft_label_probe
from distill_core.generate.features import GeneratedFeatures
from distill_core.synthesize.base import select_per_class

SCORES_SCHEMA = pa.schema([
    ("setting", pa.string()), ("method", pa.string()), ("replicate", pa.int32()),
    ("seed", pa.int64()), ("per_class", pa.int32()), ("n_train", pa.int64()),
    ("accuracy", pa.float64()), ("macro_f1", pa.float64()), ("converged", pa.bool_()),
    ("wall_time_s", pa.float64()), ("note", pa.string()),
])


def _row(setting: str, method: str, replicate: int | None, seed: int | None,
         per_class: int | None, score: ProbeScore) -> dict[str, Any]:
    return {"setting": setting, "method": method, "replicate": replicate, "seed": seed,
            "per_class": per_class, "n_train": score.n_train, "accuracy": score.accuracy,
            "macro_f1": score.macro_f1, "converged": score.converged,
            "wall_time_s": score.wall_time_s, "note": score.note}


def evaluate_selection(train: pa.Table, train_x: np.ndarray, eval_y: np.ndarray,
                       eval_x: np.ndarray, distilled: pa.Table, method: str, per_class: int,
                       seeds: list[int], n_labels: int, baselines: list[str], C: float,  # noqa: N803
                       max_iter: int, progress: Callable[[str], None] | None = None,
                       temperature: float = 1.0,
                       generated: GeneratedFeatures | None = None) -> pa.Table:
    """Scores of every replicate of `distilled` and of the baselines, one row per fit.

    A distilled row's features come from the training split or, for a generated row, from
    `generated`; the baselines draw on the training split alone.
    """
    labels = list(range(n_labels))
    train_y = train.column("label_id").to_numpy()
    pool_x, pool_y = train_x, train_y
    position = {eid: i for i, eid in enumerate(train.column("example_id").to_pylist())}
    if generated is not None:
        pool_x = generated.extend(position, train_x)
        pool_y = np.concatenate([pool_y, generated.y.astype(pool_y.dtype)])
    rows = []

    def fit(rows_idx: np.ndarray, weights: np.ndarray | None = None) -> ProbeScore:
        return linear_probe(pool_x[rows_idx], pool_y[rows_idx], eval_x, eval_y, labels, C,
                            max_iter, sample_weight=weights)

    for replicate, seed in enumerate(seeds):
        subset = distilled.filter(pc.equal(distilled.column("replicate"), replicate))
        index = np.fromiter((position[e] for e in subset.column("example_id").to_pylist()),
                            dtype=np.int64)
        weights = subset.column("weight").to_numpy()
        weights = None if np.allclose(weights, 1.0) else weights
        rows.append(_row("distilled", method, replicate, seed, per_class, fit(index, weights)))
        if progress:
            progress(f"{method} seed {seed}")
        if subset.num_rows and subset.column("soft_label").null_count == 0:
            targets = np.asarray(subset.column("soft_label").to_pylist(), dtype=np.float64)
            score = soft_label_probe(pool_x[index], targets, eval_x, eval_y, labels, C,
                                     temperature, sample_weight=weights)
            rows.append(_row("distilled_soft", f"{method}+soft", replicate, seed, per_class,
                             score))
        if "random" in baselines:
            picked = select_per_class("random", train_x, train_y, per_class, seed)
            rows.append(_row("random", "random", replicate, seed, per_class, fit(picked.indices)))
            if progress:
                progress(f"random seed {seed}")
    if "full" in baselines:
        rows.append(_row("full", "full", None, None, None, fit(np.arange(len(train_x)))))
        if progress:
            progress("full data")
    return pa.Table.from_pylist(rows, schema=SCORES_SCHEMA)


def summarize_scores(scores: pa.Table) -> list[dict[str, Any]]:
    """Mean, sample std and count of accuracy and macro-F1 per setting, in first-seen order."""
    summary: dict[str, dict[str, Any]] = {}
    for row in scores.to_pylist():
        entry = summary.setdefault(row["setting"], {
            "setting": row["setting"], "method": row["method"], "per_class": row["per_class"],
            "accuracy": [], "macro_f1": [], "n_train": row["n_train"]})
        entry["accuracy"].append(row["accuracy"])
        entry["macro_f1"].append(row["macro_f1"])
    out = []
    for entry in summary.values():
        acc, f1 = np.asarray(entry.pop("accuracy")), np.asarray(entry.pop("macro_f1"))
        out.append({**entry, "n": len(acc),
                    "accuracy_mean": float(acc.mean()),
                    "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                    "macro_f1_mean": float(f1.mean()),
                    "macro_f1_std": float(f1.std(ddof=1)) if len(f1) > 1 else 0.0})
    return out
