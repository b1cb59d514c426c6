"""The benchmark report: results tables (mean ± std, best per column marked), the
metrics table, and one PNG per (dataset, learner, labels): accuracy against data
per class, one line per method, the full-data accuracy as a line across.
Written as report.md and report.html from the same tables.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from distill_core.bench.cells import FULL

Panel = tuple[str, str, str]  # dataset, learner, labels


def _pct(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "-"
    return f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")


def _pts(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}"


def panels(summary: list[dict[str, Any]]) -> list[Panel]:
    return list(dict.fromkeys((s["dataset"], s["learner"], s["labels"]) for s in summary
                              if s["method"] != FULL))


def _panel_entries(summary: list[dict[str, Any]], panel: Panel) -> list[dict[str, Any]]:
    return [s for s in summary
            if (s["dataset"], s["learner"], s["labels"]) == panel and s["method"] != FULL]


OWN_LABELS_MARK = " †"
OWN_LABELS_NOTE = ("† the set carries its own learned soft labels (a labelled auto choice, "
                   "synthesize.labels.learn, or a learned method): its score is the soft-label "
                   "table's; this cell trains the same rows on their own labels.")


LEARNED_LABELS_MARK = " ‡"
LEARNED_LABELS_NOTE = ("‡ the set's soft labels are the ones its learned method learned with "
                       "it, not the teacher's that the other sets of this table train on.")


def own_labels_note(rows: list[list[str]]) -> str | None:
    """The footnotes a table needs for the cells `results_table` marked."""
    notes = [note for mark, note in ((OWN_LABELS_MARK, OWN_LABELS_NOTE),
                                     (LEARNED_LABELS_MARK, LEARNED_LABELS_NOTE))
             if any(cell.endswith(mark) for row in rows for cell in row)]
    return " ".join(notes) or None


def _learns_its_labels(method: str) -> bool:
    from distill_core.methods import get_method

    try:
        return get_method(method).learned
    except KeyError:  # a method this version no longer registers
        return False


def results_table(summary: list[dict[str, Any]], panel: Panel, teacher_soft_labels: bool = True
                  ) -> tuple[list[str], list[list[str]], set[tuple[int, int]]]:
    """(header, rows, bold cells): methods × budgets for one panel, plus full data. When the
    benchmark gives no teacher soft labels (`teacher_soft_labels` false), a hard-label cell
    whose set also has a soft-label score carries its own learned labels: it is marked (†),
    since that set's score is the soft one. When it does, a learned method's soft-label cell
    is marked (‡): its labels are its own, not the teacher's."""
    dataset, learner, labels = panel
    entries = _panel_entries(summary, panel)
    own = set() if teacher_soft_labels or labels != "hard" else {
        (s["method"], s["per_class"]) for s in summary
        if (s["dataset"], s["learner"], s["labels"]) == (dataset, learner, "soft")}
    budgets = sorted({s["per_class"] for s in entries})
    methods = list(dict.fromkeys(s["method"] for s in entries))
    learned = ({m for m in methods if _learns_its_labels(m)}
               if teacher_soft_labels and labels == "soft" else set())
    by_key = {(s["method"], s["per_class"]): s for s in entries}
    rows, bold = [], set()
    for j, budget in enumerate(budgets):
        means = {m: by_key[(m, budget)]["accuracy_mean"] for m in methods
                 if (m, budget) in by_key}
        if means:
            best = max(means.values())
            bold |= {(i, j + 1) for i, m in enumerate(methods) if means.get(m) == best}
    for method in methods:
        rows.append([method] + [_pct(by_key[(method, b)]["accuracy_mean"],
                                     by_key[(method, b)]["accuracy_std"])
                                + (OWN_LABELS_MARK if (method, b) in own else "")
                                + (LEARNED_LABELS_MARK if method in learned else "")
                                if (method, b) in by_key else "-" for b in budgets])
    full = next((s for s in summary if (s["dataset"], s["learner"], s["labels"], s["method"])
                 == (dataset, learner, "hard", FULL)), None)
    if full is not None:
        rows.append([f"full data ({full['n_train']} rows)"]
                    + [_pct(full["accuracy_mean"], full["accuracy_std"] if full["n"] > 1
                            else None)] * len(budgets))
    return ["method"] + [f"{b}/class" for b in budgets], rows, bold


METRIC_HEADER = ["dataset", "learner", "labels", "method", "per class", "n", "accuracy %",
                 "macro-F1 %", "retention %", "vs random (pts)", "hard-label recovery (pts)",
                 "wall s/cell", "peak RSS MiB"]


def metric_rows(summary: list[dict[str, Any]]) -> list[list[str]]:
    return [[s["dataset"], s["learner"], s["labels"], s["method"],
             "-" if s["per_class"] is None else str(s["per_class"]), str(s["n"]),
             _pct(s["accuracy_mean"], s["accuracy_std"]),
             _pct(s["macro_f1_mean"], s["macro_f1_std"]), _pct(s["retention"]),
             _pts(s["improvement_over_random"]),
             "-" if s["hard_label_recovery"] is None else f"{100 * s['hard_label_recovery']:.1f}",
             f"{s['wall_time_s_mean']:.2f}", f"{s['peak_rss_mb_max']:.0f}"] for s in summary]


def md_table(header: list[str], rows: Iterable[list[str]],
              bold: set[tuple[int, int]] = frozenset()) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(rows):
        lines.append("| " + " | ".join(f"**{c}**" if (i, j) in bold else c
                                       for j, c in enumerate(row)) + " |")
    return "\n".join(lines)


def panel_tables_md(summary: list[dict[str, Any]], teacher_soft_labels: bool = True) -> str:
    """Every panel's results table in markdown (for the Prefect artifact and the CLI)."""
    blocks = []
    for panel in panels(summary):
        header, rows, bold = results_table(summary, panel, teacher_soft_labels)
        note = own_labels_note(rows)
        blocks.append(f"### {panel[0]} — {panel[1]} ({panel[2]} labels)\n\n"
                      f"{md_table(header, rows, bold)}" + (f"\n\n{note}" if note else ""))
    return "\n\n".join(blocks)


def _html_table(header: list[str], rows: Iterable[list[str]],
                bold: set[tuple[int, int]] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f"<td><b>{html.escape(c)}</b></td>" if (i, j) in bold else f"<td>{html.escape(c)}</td>"
        for j, c in enumerate(row)) + "</tr>" for i, row in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def plot_panel(summary: list[dict[str, Any]], panel: Panel, path: Path) -> Path:
    """Accuracy against data per class, one line per method, full data across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = _panel_entries(summary, panel)
    figure, axis = plt.subplots(figsize=(6, 4), dpi=110)
    for method in dict.fromkeys(s["method"] for s in entries):
        points = sorted((s["per_class"], s["accuracy_mean"], s["accuracy_std"])
                        for s in entries if s["method"] == method)
        axis.errorbar([p[0] for p in points], [100 * p[1] for p in points],
                      yerr=[100 * p[2] for p in points], marker="o", capsize=3, label=method)
    full = next((s for s in summary if (s["dataset"], s["learner"], s["labels"], s["method"])
                 == (panel[0], panel[1], "hard", FULL)), None)
    if full is not None:
        axis.axhline(100 * full["accuracy_mean"], color="black", linestyle="--",
                     label="full data")
    axis.set_xlabel("data per class")
    axis.set_ylabel("accuracy (%)")
    axis.set_xticks(sorted({s["per_class"] for s in entries}))
    axis.set_title(f"{panel[0]} — {panel[1]} ({panel[2]} labels)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def write_reports(bench_dir: Path, summary: list[dict[str, Any]], facts: dict[str, Any]
                  ) -> tuple[Path, Path]:
    """report.md, report.html and plots/*.png in `bench_dir`."""
    md = [f"# Benchmark {facts['bench_id']}", "",
          f"{facts['cells']} cells ({facts['cells_scored']} scored in this run, the rest "
          f"from the cache); seeds {facts['seeds']}; accuracy % on each dataset's evaluation "
          "split, mean ± sample std over seeds; best per column in bold.", ""]
    parts = [f"<h1>Benchmark {html.escape(facts['bench_id'])}</h1>",
             f"<p>{html.escape(md[2])}</p>"]
    teacher_soft_labels = bool(facts.get("config", {}).get("soft_labels", True))
    for panel in panels(summary):
        title = f"{panel[0]} — {panel[1]} ({panel[2]} labels)"
        header, rows, bold = results_table(summary, panel, teacher_soft_labels)
        note = own_labels_note(rows)
        png = plot_panel(summary, panel, bench_dir / "plots" / f"{'-'.join(panel)}.png")
        rel = png.relative_to(bench_dir).as_posix()
        md += [f"## {title}", "", md_table(header, rows, bold), ""]
        md += [note, ""] if note else []
        md += [f"![{title}]({rel})", ""]
        parts += [f"<h2>{html.escape(title)}</h2>", _html_table(header, rows, bold)]
        parts += [f"<p>{html.escape(note)}</p>"] if note else []
        parts += [f'<img src="{html.escape(rel)}" alt="{html.escape(title)}">']
    md += ["## Metrics", "", md_table(METRIC_HEADER, metric_rows(summary)), ""]
    parts += ["<h2>Metrics</h2>", _html_table(METRIC_HEADER, metric_rows(summary))]
    return write_pages(bench_dir, facts["bench_id"], md, parts)


def write_pages(bench_dir: Path, title: str, md: list[str], parts: list[str]
                ) -> tuple[Path, Path]:
    """report.md from Markdown lines and report.html from HTML parts, in `bench_dir`."""
    md_path, html_path = bench_dir / "report.md", bench_dir / "report.html"
    md_path.write_text("\n".join(md), encoding="utf-8")
    style = ("body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:"
             "collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:"
             "right}td:first-child{text-align:left}")
    html_path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>"
                         f"{html.escape(title)}</title><style>{style}</style>"
                         f"</head><body>{''.join(parts)}</body></html>", encoding="utf-8")
    return md_path, html_path
