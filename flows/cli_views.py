"""How the CLI shows progress, scores, the funnel and one row's lineage (rich)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

from distill_core.markdown import score_rows


def scores_table(summary: list[dict[str, Any]]) -> Table:
    table = Table(title="Scores on the evaluation split (%)")
    for column in ("setting", "budget", "n", "accuracy", "macro-F1"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for row in score_rows(summary):
        table.add_row(*row)
    return table


def funnel_table(funnel: list[dict[str, Any]]) -> Table:
    table = Table(title="Funnel")
    for column in ("stage", "in", "out", "rejected", "by reason", "balanced", "reused"):
        table.add_column(column)
    for f in funnel:
        if f.get("handoff"):
            continue
        reasons = ", ".join(f"{k}: {v}" for k, v in f["rejects_by_reason"].items()) or "-"
        table.add_row(f["stage"], str(f["rows_in"]), str(f["rows_out"]),
                      str(f["rows_rejected"]), reasons,
                      "yes" if f["balanced"] else "[red]NO[/]",
                      "cache" if f["cache_hit"] else "-")
    return table


def print_lineage(console: Console, lineage: dict[str, Any]) -> None:
    if not lineage["found"]:
        console.print(f"[red]example {lineage['example_id']} is not in this run[/]")
        return
    console.print(f"[bold]{lineage['example_id']}[/]")
    for row in lineage["distilled"]:
        console.print(f"  distilled in replicate {row['replicate']} (seed {row['seed']}) by "
                      f"{row['method']}, rank {row['rank']}, parents {list(row['parent_ids'])}: "
                      f"{row['text']!r}")
    for row in lineage.get("generated", []):
        console.print(f"  generated in replicate {row['replicate']} from prompt "
                      f"{row['prompt_id']} (sample {row['sample']}, seed {row['seed']}, "
                      f"{row['new_tokens']} tokens, worker {row['worker']}), teacher p(label) "
                      f"{row['teacher_p']:.2f}; answer: {row['answer']!r}")
    for row in lineage["sources"]:
        console.print(f"  source: {row['source']} row {row['source_row']} ({row['split']}, "
                      f"label {row['label']}): {row['text']!r}")
    for row in lineage["rejected"]:
        console.print(f"  rejected at {row['stage']} (replicate {row['replicate']}): "
                      f"{row['reason']} {row['detail'] or ''}")


@contextmanager
def progress_bars(console: Console, fixed: tuple[str, ...] = ()) -> Iterator[None]:
    """Rich progress bars fed by the stages' reporter: `fixed` bars up front (others ignored),
    or, with none fixed, a bar for each stage or step as it first reports."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tasks.progress import set_reporter

    with Progress(TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=console,
                  transient=False) as progress:
        bars = {s: progress.add_task(s, total=None, note="", start=False) for s in fixed}

        def reporter(stage: str, done: float, total: float | None, note: str) -> None:
            if stage not in bars:
                if fixed:
                    return
                bars[stage] = progress.add_task(stage, total=None, note="", start=False)
            progress.start_task(bars[stage])
            progress.update(bars[stage], completed=done, total=total, note=note[:60])

        set_reporter(reporter)
        try:
            yield
        except BaseException:
            # a failed run's terminal keeps only its error: the bars vanish, no blank line
            progress.live.transient = True
            progress.live.stop()
            progress.disable = True
            raise
        finally:
            set_reporter(None)
