"""`textdistill cache show|prune`: what a runs folder's cache holds, and pruning it.

Registered on the app in `flows/cli.py`; the work is `distill_core.artifacts.cache_prune`.
Expected failures (no criteria, a size that does not parse, an object store, a cache in use
by a running stage) are one line and exit status 2, like every command.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from typing import Annotated, Any

import typer
from pydantic import ByteSize, TypeAdapter, ValidationError
from rich.table import Table

from distill_core.artifacts.cache_prune import (
    CacheEntry,
    PrunePlan,
    cache_entries,
    kind_note,
    local_cache_root,
    prune,
)
from distill_core.errors import ConfigError

cache_app = typer.Typer(no_args_is_help=True,
                        help="What a runs folder's cache holds (show), and pruning it (prune).")

RunsDir = Annotated[str, typer.Option(help="The runs folder whose cache (<runs>/.cache) to use.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Debug = Annotated[bool, typer.Option("--debug", help="On an expected error, show its traceback "
                                                     "too.")]


def _size(value: int) -> str:
    return ByteSize(value).human_readable(decimal=True)


def _age(seconds: float) -> str:
    days = seconds / 86_400
    return f"{days:.1f} d" if days >= 1 else f"{seconds / 3600:.1f} h"


def _by_kind(entries: list[CacheEntry]) -> dict[str, list[CacheEntry]]:
    kinds: dict[str, list[CacheEntry]] = defaultdict(list)
    for entry in entries:
        kinds[entry.kind].append(entry)
    return dict(sorted(kinds.items()))


def _summary(entries: list[CacheEntry], now: float) -> dict[str, Any]:
    return {"entries": len(entries), "bytes": sum(e.bytes for e in entries),
            "least_recently_used_days": round((now - min(e.last_used for e in entries))
                                              / 86_400, 3) if entries else None}


@cache_app.command()
def show(runs_dir: RunsDir = "runs", as_json: JsonOption = False, debug: Debug = False) -> None:
    """Entries, bytes and last use of each kind of cache entry."""
    from flows.cli import _expected_errors, console

    with _expected_errors(debug, runs_dir):
        _runs, cache_root = local_cache_root(runs_dir)
        entries = cache_entries(cache_root)
    now = time.time()
    kinds = {kind: _summary(group, now) for kind, group in _by_kind(entries).items()}
    if as_json:
        sys.stdout.write(json.dumps({"cache": str(cache_root), "kinds": kinds,
                                     "total": _summary(entries, now)}, indent=2) + "\n")
        return
    table = Table(title=f"Cache of {runs_dir} ({cache_root})")
    for column in ("kind", "holds", "entries", "size", "least recently used"):
        table.add_column(column, justify="left" if column in ("kind", "holds") else "right")
    for kind, row in kinds.items():
        table.add_row(kind, kind_note(kind), str(row["entries"]), _size(row["bytes"]),
                      _age(row["least_recently_used_days"] * 86_400) + " ago")
    table.add_row("total", "", str(len(entries)), _size(sum(e.bytes for e in entries)), "",
                  style="bold")
    console.print(table)


def _max_bytes(max_size: str | None) -> int | None:
    if max_size is None:
        return None
    try:
        return int(TypeAdapter(ByteSize).validate_python(max_size))
    except ValidationError:
        raise ConfigError(f"--max-size {max_size!r} is not a size: give bytes with a unit, "
                          "e.g. 200GB, 1.5TiB or 500MB") from None


def _plan_json(plan: PrunePlan, dry_run: bool) -> dict[str, Any]:
    now = time.time()
    return {"dry_run": dry_run,
            "removed": {k: _summary(g, now) for k, g in _by_kind(plan.remove).items()},
            "kept": {k: _summary(g, now) for k, g in _by_kind(plan.keep).items()},
            "removed_bytes": sum(e.bytes for e in plan.remove), "kept_bytes": plan.kept_bytes,
            "pinned_teacher_models": [str(e.path) for e in plan.pinned],
            "leftovers": [str(p) for p in plan.leftovers],
            "leftover_bytes": plan.leftover_bytes, "fits": plan.fits}


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
        plan = prune(runs_dir, unused_days, _max_bytes(max_size), dry_run)
    if as_json:
        sys.stdout.write(json.dumps(_plan_json(plan, dry_run), indent=2) + "\n")
        return
    verb = "would remove" if dry_run else "removed"
    table = Table(title=f"Cache of {runs_dir}: {verb}")
    for column in ("kind", f"{verb} entries", "size", "kept entries", "kept size"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    removed, kept = _by_kind(plan.remove), _by_kind(plan.keep)
    for kind in sorted(set(removed) | set(kept)):
        gone, stays = removed.get(kind, []), kept.get(kind, [])
        table.add_row(kind, str(len(gone)), _size(sum(e.bytes for e in gone)), str(len(stays)),
                      _size(sum(e.bytes for e in stays)))
    console.print(table)
    console.print(f"{verb} {len(plan.remove)} entries ({_size(sum(e.bytes for e in plan.remove))})"
                  f" and {len(plan.leftovers)} temporary files of interrupted writers "
                  f"({_size(plan.leftover_bytes)}); kept {len(plan.keep)} "
                  f"({_size(plan.kept_bytes)})", soft_wrap=True, highlight=False)
    if plan.pinned:
        console.print(f"kept {len(plan.pinned)} fine-tuned teacher model(s) that a run's "
                      "teacher stage reads", soft_wrap=True, highlight=False)
    if not plan.fits:
        console.print(f"[yellow]the kept entries ({_size(plan.kept_bytes)}) exceed --max-size "
                      f"{max_size}: what is left is read by runs[/]", soft_wrap=True)
