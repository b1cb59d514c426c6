"""`textdistill cache show|prune`: what a runs folder's cache holds, and pruning it.

Registered on the app in `flows/cli.py`; the work is `distill_core.artifacts.cache_prune`.
Expected failures (no criteria, a size that does not parse, an object store, a cache in use
by a running stage) are one line and exit status 2, like every command.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich.table import Table

from distill_core.artifacts.cache_prune import (
    by_kind,
    cache_entries,
    human_size,
    kind_note,
    kind_summary,
    local_cache_root,
    parse_size,
    plan_summary,
    prune,
)

cache_app = typer.Typer(no_args_is_help=True,
                        help="What a runs folder's cache holds (show), and pruning it (prune).")

RunsDir = Annotated[str, typer.Option(help="The runs folder whose cache (<runs>/.cache) to use.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Debug = Annotated[bool, typer.Option("--debug", help="On an expected error, show its traceback "
                                                     "too.")]


def _age(seconds: float) -> str:
    days = seconds / 86_400
    return f"{days:.1f} d" if days >= 1 else f"{seconds / 3600:.1f} h"


@cache_app.command()
def show(runs_dir: RunsDir = "runs", as_json: JsonOption = False, debug: Debug = False) -> None:
    """Entries, bytes and last use of each kind of cache entry."""
    from flows.cli import _expected_errors, console

    with _expected_errors(debug, runs_dir):
        _runs, cache_root = local_cache_root(runs_dir)
        entries = cache_entries(cache_root)
    now = time.time()
    kinds = {kind: kind_summary(group, now) for kind, group in by_kind(entries).items()}
    if as_json:
        sys.stdout.write(json.dumps({"cache": str(cache_root), "kinds": kinds,
                                     "total": kind_summary(entries, now)}, indent=2) + "\n")
        return
    table = Table(title=f"Cache of {runs_dir} ({cache_root})")
    for column in ("kind", "holds", "entries", "size", "least recently used"):
        table.add_column(column, justify="left" if column in ("kind", "holds") else "right")
    for kind, row in kinds.items():
        table.add_row(kind, kind_note(kind), str(row["entries"]), human_size(row["bytes"]),
                      _age(row["least_recently_used_days"] * 86_400) + " ago")
    table.add_row("total", "", str(len(entries)),
                  human_size(sum(e.bytes for e in entries)), "", style="bold")
    console.print(table)


@cache_app.command(name="prune")
def prune_command(
    runs_dir: RunsDir = "runs",
    unused_days: Annotated[float | None, typer.Option(
        help="Remove entries no run has written or reused for this many days.")] = None,
    max_size: Annotated[str | None, typer.Option(
        help="Then remove the least recently used until the cache fits this size (200GB, "
             "1.5TiB).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would go; remove nothing.")] = False,
    as_json: JsonOption = False,
    debug: Debug = False,
) -> None:
    """Remove entries by last use, then by size; refused while a run's stage uses the cache."""
    from flows.cli import _expected_errors, console

    with _expected_errors(debug, runs_dir):
        plan = prune(runs_dir, unused_days, parse_size(max_size), dry_run)
    if as_json:
        sys.stdout.write(json.dumps(plan_summary(plan, dry_run), indent=2) + "\n")
        return
    verb = "would remove" if dry_run else "removed"
    table = Table(title=f"Cache of {runs_dir}: {verb}")
    for column in ("kind", f"{verb} entries", "size", "kept entries", "kept size"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    removed, kept = by_kind(plan.remove), by_kind(plan.keep)
    for kind in sorted(set(removed) | set(kept)):
        gone, stays = removed.get(kind, []), kept.get(kind, [])
        table.add_row(kind, str(len(gone)), human_size(sum(e.bytes for e in gone)),
                      str(len(stays)), human_size(sum(e.bytes for e in stays)))
    console.print(table)
    freed = human_size(sum(e.bytes for e in plan.remove))
    console.print(f"{verb} {len(plan.remove)} entries ({freed})"
                  f" and {len(plan.leftovers)} temporary files of interrupted writers "
                  f"({human_size(plan.leftover_bytes)}); kept {len(plan.keep)} "
                  f"({human_size(plan.kept_bytes)})", soft_wrap=True, highlight=False)
    if plan.pinned:
        console.print(f"kept {len(plan.pinned)} fine-tuned teacher model(s) that a run's "
                      "teacher stage reads", soft_wrap=True, highlight=False)
    if not plan.fits:
        console.print(f"[yellow]the kept entries ({human_size(plan.kept_bytes)}) exceed "
                      f"--max-size {max_size}: what is left is read by runs[/]", soft_wrap=True)
