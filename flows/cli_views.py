"""How the CLI shows progress, scores, benchmark results, the funnel and one row's lineage.

On a terminal: rich tables and live progress bars. Piped or redirected: the same tables at
their natural width (a long path or row never wraps at 80 columns), no colour codes, and the
bars on stderr if that is a terminal, else none, so a log or `grep` sees whole lines.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from distill_core.markdown import score_rows

PIPED_WIDTH = 10_000  # columns of a console that is no terminal: tables keep their own width
STATUSES = ("computed", "resumed", "cached")  # a stage's outcome, as the stage task reports it
REUSED = ("resumed", "cached")


class CliConsole(Console):
    """A rich console that renders unwrapped lines when its output is no terminal (a pipe,
    a file, a test's capture), decided at each print: CliRunner swaps stdout per call. An
    explicit width (`COLUMNS`, `width=`) still wins."""

    @property
    def size(self) -> ConsoleDimensions:
        dims = Console.size.fget(self)  # type: ignore[attr-defined]
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(PIPED_WIDTH, dims.height)
        return dims

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def scores_table(summary: list[dict[str, Any]]) -> Table:
    table = Table(title="Scores on the evaluation split (%)")
    for column in ("setting", "budget", "n", "short", "accuracy", "macro-F1"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for row in score_rows(summary):
        table.add_row(*row)
    return table


def auto_choice_line(block: dict[str, Any] | None) -> str | None:
    """What `auto` chose, under the scores table; which row is its score when the choice
    learned soft labels (the `auto` row trains the same rows on their hard labels)."""
    if not block or "chosen" not in block:
        return None
    line = f"auto chose {block['chosen']}"
    if block.get("learned_labels"):
        line += (": its set carries learned soft labels, so 'auto (distilled, soft labels)' "
                 "is this choice's score ('auto (distilled)': the same rows on hard labels)")
    return line + " (the report's auto section explains the choice)"


def instruction_scores_table(summary: list[dict[str, Any]]) -> Table:
    """An instruction run's sft_lora scores (held-out loss per token, perplexity, ...)."""
    from distill_core.pipeline.stages.instruct_evaluate import SCORE_HEADER, score_rows

    table = Table(title="sft_lora on the evaluation split")
    for column in SCORE_HEADER:
        table.add_column(column, justify="left" if column == "setting" else "right")
    for row in score_rows(summary):
        table.add_row(*row)
    return table


def instruction_bench_tables(summary: list[dict[str, Any]], datasets: list[str]
                             ) -> list[Table]:
    """One table per dataset of an instruction benchmark's summary.json (report.md's)."""
    from distill_core.bench.instruction import HEADER, dataset_table

    tables = []
    for dataset in datasets:
        table = Table(*HEADER, title=f"{dataset}: held-out loss per token (sft_lora)")
        rows, bold = dataset_table(summary, dataset)
        for i, row in enumerate(rows):
            table.add_row(*(f"[bold]{c}[/]" if (i, j) in bold else c
                            for j, c in enumerate(row)))
        tables.append(table)
    return tables


def bench_tables(summary: list[dict[str, Any]], teacher_soft_labels: bool = True
                 ) -> list[Table]:
    """One table per (dataset, learner, labels) of a benchmark's summary.json: methods ×
    budgets, accuracy % mean ± std, the best per budget in bold, full data last, and the
    footnote on sets that carry their own learned labels (the tables of report.md)."""
    from distill_core.bench.report import own_labels_note, panels, results_table

    tables = []
    for panel in panels(summary):
        header, rows, bold = results_table(summary, panel, teacher_soft_labels)
        table = Table(title=f"{panel[0]} — {panel[1]} ({panel[2]} labels): accuracy % on the "
                            "evaluation split", caption=own_labels_note(rows))
        for j, column in enumerate(header):
            table.add_column(column, justify="left" if j == 0 else "right")
        for i, row in enumerate(rows):
            table.add_row(*[Text(cell, style="bold" if (i, j) in bold else "")
                            for j, cell in enumerate(row)])
        tables.append(table)
    return tables


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


def row_texts(row: dict[str, Any]) -> str:
    """A row's text as the lineage shows it: the text, with its pair when it has one
    (instruction rows, label `instruction`: prompt and response)."""
    pair = row.get("text_pair")
    if pair is None:
        return repr(row["text"])
    if row.get("label") == "instruction":
        return f"prompt {row['text']!r}, response {pair!r}"
    return f"{row['text']!r} / {pair!r}"


def print_lineage(console: Console, lineage: dict[str, Any]) -> None:
    if not lineage["found"]:
        console.print(f"[red]example {lineage['example_id']} is not in this run[/]")
        return
    console.print(f"[bold]{lineage['example_id']}[/]")
    for row in lineage["distilled"]:
        console.print(f"  distilled in replicate {row['replicate']} (seed {row['seed']}) by "
                      f"{row['method']}, rank {row['rank']}, parents {list(row['parent_ids'])}: "
                      f"{row_texts(row)}", markup=False, highlight=False)
    for row in lineage.get("generated", []):
        judged = (f"teacher p(label) {row['teacher_p']:.2f}" if row["teacher_p"] is not None
                  else f"reference loss {row.get('reference_loss', float('nan')):.3f}")
        console.print(f"  generated in replicate {row['replicate']} from prompt "
                      f"{row['prompt_id']} (sample {row['sample']}, seed {row['seed']}, "
                      f"{row['new_tokens']} tokens, worker {row['worker']}), {judged}; "
                      f"answer: {row['answer']!r}")
    for row in lineage.get("learned", []):
        console.print(f"  learned in replicate {row['replicate']} (seed {row['seed']}) as "
                      f"synthetic example {row['synthetic_id']}, decoded by {row['decoding']} "
                      f"(score {row['decode_score']:.3f}), learned lr {row['lr']:.3g}, soft "
                      f"label {[round(v, 3) for v in row['soft_label']]}, initialised from "
                      f"{list(row['parent_ids'])}")
    for row in lineage["sources"]:
        console.print(f"  source: {row['source']} row {row['source_row']} ({row['split']}, "
                      f"label {row['label']}): {row_texts(row)}", markup=False,
                      highlight=False)
    for row in lineage["rejected"]:
        console.print(f"  rejected at {row['stage']} (replicate {row['replicate']}): "
                      f"{row['reason']} {row['detail'] or ''}")


@dataclass
class StageLog:
    """What the stages reported during one command: each stage's outcome (computed, resumed
    from the run folder, restored from the cache) as its task reported it."""

    status: dict[str, str] = field(default_factory=dict)

    def note(self, stage: str, note: str) -> None:
        if note in STATUSES:
            self.status[stage] = note


def reuse_summary(stages: tuple[str, ...], log: StageLog, run_dir: str | Path,
                  backend: str, ray_contacted: bool) -> str:
    """One line saying which stages were reused and which computed in this command."""
    reused = [s for s in stages if log.status.get(s) in REUSED]
    computed = [s for s in stages if log.status.get(s) == "computed"]
    cached = [s for s in reused if log.status[s] == "cached"]
    if stages and len(reused) == len(stages):
        where = (f"from {run_dir}" if not cached else
                 f"({len(reused) - len(cached)} from {run_dir}, {len(cached)} from the cache)")
        ray = " (Ray was not contacted)" if backend == "ray" and not ray_contacted else ""
        return f"all {len(stages)} stages reused {where}; nothing was computed{ray}"
    parts = [f"{len(computed)} of {len(stages)} stages computed"
             + (f" ({', '.join(computed)})" if computed else "")]
    if reused:
        parts.append(f"{len(reused)} reused ({', '.join(f'{s} {log.status[s]}' for s in reused)})")
    return "; ".join(parts)


@contextmanager
def _log_only(log: StageLog) -> Iterator[StageLog]:
    from tasks.progress import set_reporter

    set_reporter(lambda stage, done, total, note: log.note(stage, note))
    try:
        yield log
    finally:
        set_reporter(None)


@contextmanager
def progress_bars(console: Console, fixed: tuple[str, ...] = ()) -> Iterator[StageLog]:
    """Rich progress bars fed by the stages' reporter: `fixed` bars up front (others ignored),
    or, with none fixed, a bar for each stage or step as it first reports. Yields the log of
    the stages' outcomes. The bars go to stdout on a terminal, to stderr when only stderr is
    one (`run ... > out.txt`), and nowhere when neither is: a log gets the tables and the
    outcome line after the run, and a failure stays one line."""
    log = StageLog()
    if not console.is_terminal:
        console = CliConsole(stderr=True)
        if not console.is_terminal:
            with _log_only(log):
                yield log
            return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tasks.progress import set_reporter

    with Progress(TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=console,
                  transient=False) as progress:
        bars = {s: progress.add_task(s, total=None, note="", start=False) for s in fixed}

        def reporter(stage: str, done: float, total: float | None, note: str) -> None:
            log.note(stage, note)
            if stage not in bars:
                if fixed:
                    return
                bars[stage] = progress.add_task(stage, total=None, note="", start=False)
            progress.start_task(bars[stage])
            progress.update(bars[stage], completed=done, total=total, note=note[:60])

        set_reporter(reporter)
        try:
            yield log
        except BaseException:
            # a failed run's terminal keeps only its error: the bars vanish, no blank line
            progress.live.transient = True
            progress.live.stop()
            progress.disable = True
            raise
        finally:
            set_reporter(None)


def ray_contacted() -> bool:
    """Whether this process connected to Ray (it is imported only when a stage computes)."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def print_validation(console: Console, result: Any, guessed: list[str], limit: int,
                     as_json: bool) -> int:
    """The sources, problems and labels of a validation (or its JSON); the problem count."""
    problems = result.rejects.to_pylist()
    if as_json:
        sys.stdout.write(json.dumps({"sources": result.sources, "label_names": result.label_names,
                                     "guessed": guessed, "problems": problems,
                                     "unusable": result.unusable}, indent=2,
                                    default=str) + "\n")
    else:
        if guessed:
            console.print(f"columns guessed from the file: {' '.join(guessed)} (pass them to "
                          "choose others)", markup=False, highlight=False)
        for source in result.sources:
            console.print(f"{source['split']}: {source['source']}: {source['rows_read']} rows, "
                          f"{source['rows_out']} usable, {source['rows_rejected']} rejected",
                          markup=False, highlight=False)
        table = Table(title=f"{len(problems)} problem(s)")
        for column in ("file", "row", "field", "reason", "detail"):
            table.add_column(column)
        for row in problems[:limit]:
            table.add_row(*(escape(str(v)) for v in (
                row["source"], row["source_row"], row["field"] or "-", row["reason"],
                row["detail"] or "")))
        if problems:
            console.print(table)
        console.print(f"labels: {', '.join(result.label_names)}", markup=False,
                      highlight=False)
    return len(problems)
