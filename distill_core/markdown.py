"""Markdown pieces shared by the run report's sections and the Prefect artifacts."""

from __future__ import annotations

from typing import Any


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def score_learners(summary: list[dict[str, Any]]) -> list[str]:
    """The learners of a scores summary, in order (a summary from before learners: the probe)."""
    return list(dict.fromkeys(entry.get("learner", "linear_probe") for entry in summary))


# The columns of `score_rows`, for every table that shows them.
SCORE_HEADER = ["setting", "budget", "n", "short", "accuracy", "macro-F1"]


def short_cell(short: list[int | None] | None) -> str:
    """Rows below the budget per set: `0`, `3`, or `0–3` when the seeds' sets differ; `-` for
    a setting without a budget (full) or a summary written before sets were checked."""
    values = [s for s in short or [] if s is not None]
    if not values:
        return "-"
    low, high = min(values), max(values)
    return str(high) if low == high else f"{low}–{high}"


def setting_name(entry: dict[str, Any]) -> str:
    """What a score summary entry is: `kmeans (distilled)`, `... (distilled, soft labels)`,
    `random` or `full`."""
    if entry["setting"] == "distilled":
        return f"{entry['method']} (distilled)"
    if entry["setting"] == "distilled_soft":
        return f"{entry['method'].removesuffix('+soft')} (distilled, soft labels)"
    return entry["setting"]


def score_rows(summary: list[dict[str, Any]]) -> list[list[str]]:
    """Rows of the scores table (`SCORE_HEADER`): setting, budget, n (fits), short (rows below
    the budget per set), accuracy mean ± std, macro-F1 mean ± std.

    With several learners, each setting names its learner: `kmeans (distilled) [finetune]`.
    """
    several = len(score_learners(summary)) > 1
    rows = []
    for entry in summary:
        label = setting_name(entry)
        if several:
            label += f" [{entry.get('learner', 'linear_probe')}]"
        budget = (f"{entry['per_class']}/class" if entry["per_class"]
                  else f"all ({entry['n_train']})")
        rows.append([label, budget, str(entry["n"]), short_cell(entry.get("short")),
                     f"{pct(entry['accuracy_mean'])} ± {pct(entry['accuracy_std'])}",
                     f"{pct(entry['macro_f1_mean'])} ± {pct(entry['macro_f1_std'])}"])
    return rows
