"""What a runs folder's cache holds, and pruning it by last use and by size.

Scheduled runs fill `<runs>/.cache/` without bound: a whole copy of each cached stage per
fingerprint, a row-cache part and a signals part per new ingest part every night, models and
generations. `cache_entries` lists every entry with its bytes and its last use (its mtime:
written, or marked when a stage reused it, `cache_use.mark_used`); `prune` removes those
unused for longer than asked, then the least recently used until the cache fits a size, and
every temporary file that interrupted writers left. It holds the cache's lock alone while
it works, so no stage runs meanwhile (`cache_use`). Removing an entry costs only time: the
next run that needs it computes it again.

Entries by layout (`kind` = the folder under `.cache`):
- `rows/<setting>/part-*.parquet` with its sidecar `part-*.json`: one entry per part;
- `signals-parts/<key>.parquet` with `<key>.json`: one entry per part;
- every other kind (`ingest`, `signals`, `teacher`... stage copies by fingerprint;
  `ingest-files`, `generate_parts`, `generator`, `experts`, `static-encoders`,
  `teacher_model`): one entry per folder.
A record (sidecar) is removed before its data, and a folder is renamed away before it is
deleted, so a reader never trusts half an entry.

A fine-tuned teacher's model (`teacher_model/<fingerprint[:16]>`) is read by the later stages
of every run whose teacher stage has that fingerprint, including a teacher stage restored
from the cache: it is kept while a run folder under the runs folder, or a kept `teacher`
cache entry, has that fingerprint.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ByteSize, TypeAdapter, ValidationError

from distill_core.artifacts.cache_use import LOCK, cache_exclusive
from distill_core.artifacts.location import RemotePath, location
from distill_core.artifacts.stage_writer import drop_folder
from distill_core.errors import ConfigError

ROWS = "rows"
PAIRED = ("signals-parts",)
TEACHER_MODELS = "teacher_model"
TEACHER_STAGE = "teacher"
DAY_S = 86_400.0
WHAT = {ROWS: "vectors per text (row cache)", "signals-parts": "signals per ingest part",
        "ingest-files": "ingest per source file", "generate_parts": "generated samples",
        "generator": "fine-tuned generators (dilm)", "experts": "expert trajectories",
        "static-encoders": "static encoders (model2vec)",
        TEACHER_MODELS: "fine-tuned teacher models"}


def kind_note(kind: str) -> str:
    """What a kind of entry holds, for people."""
    return WHAT.get(kind, f"{kind} stage copies, by fingerprint")


@dataclass(frozen=True)
class CacheEntry:
    """One removable unit of the cache."""

    kind: str
    path: Path  # the folder, or the record (sidecar) of a paired part
    files: tuple[Path, ...]  # a paired part's files, record first; () for a folder
    bytes: int
    last_used: float  # epoch seconds

    @property
    def name(self) -> str:
        return self.path.stem if self.files else self.path.name


@dataclass
class PrunePlan:
    """What a prune removes and keeps (applied unless it was a dry run)."""

    remove: list[CacheEntry] = field(default_factory=list)
    keep: list[CacheEntry] = field(default_factory=list)
    pinned: list[CacheEntry] = field(default_factory=list)  # teacher models runs still read
    leftovers: list[Path] = field(default_factory=list)  # temporary files of dead writers
    leftover_bytes: int = 0
    max_bytes: int | None = None

    @property
    def kept_bytes(self) -> int:
        return sum(e.bytes for e in self.keep)

    @property
    def fits(self) -> bool:
        return self.max_bytes is None or self.kept_bytes <= self.max_bytes


def _tree_bytes(path: Path) -> int:
    if not path.is_dir():
        return path.lstat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass
    return total


def _paired(kind: str, folder: Path) -> Iterable[CacheEntry]:
    """`<key>.json` records with their `<key>.parquet` parts (a part without a record is a
    leftover of its writer, counted with the leftovers)."""
    for record in sorted(folder.glob("[!.]*.json")):
        if record.name == "settings.json":  # a row-cache setting's description, not a part
            continue
        data = record.with_suffix(".parquet")
        try:
            size = record.lstat().st_size + (data.lstat().st_size if data.exists() else 0)
            used = record.stat().st_mtime
        except FileNotFoundError:
            continue
        yield CacheEntry(kind, record, (record, data), size, used)


def cache_entries(cache_root: Path) -> list[CacheEntry]:
    """Every entry of the cache, by kind then name."""
    entries: list[CacheEntry] = []
    if not cache_root.is_dir():
        return entries
    for kind_dir in sorted(p for p in cache_root.iterdir() if p.is_dir()
                           and not p.name.startswith(".")):
        kind = kind_dir.name
        if kind == ROWS:
            for setting in sorted(p for p in kind_dir.iterdir() if p.is_dir()
                                  and not p.name.startswith(".")):
                entries += _paired(kind, setting)
        elif kind in PAIRED:
            entries += _paired(kind, kind_dir)
        else:
            for folder in sorted(p for p in kind_dir.iterdir() if p.is_dir()
                                 and not p.name.startswith(".")):
                entries.append(CacheEntry(kind, folder, (), _tree_bytes(folder),
                                          folder.stat().st_mtime))
    return entries


def leftovers(cache_root: Path) -> list[Path]:
    """Temporary and stale files and folders of writers (hidden names) and parts without a
    record; left only by interrupted writers once no stage holds the cache."""
    found: list[Path] = []
    if not cache_root.is_dir():
        return found
    places = [p for p in cache_root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    rows = cache_root / ROWS
    if rows.is_dir():
        places += [p for p in rows.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for place in places:
        found += sorted(p for p in place.iterdir() if p.name.startswith("."))
        if place.name in PAIRED or place.parent == rows:
            found += sorted(p for p in place.glob("[!.]*.parquet")
                            if not p.with_suffix(".json").exists())
    found += sorted(p for p in cache_root.iterdir() if p.name.startswith(".")
                    and p.name != LOCK)
    return found


def teacher_fingerprints(runs_dir: Path) -> set[str]:
    """The teacher stage fingerprints of the run folders under `runs_dir`."""
    prints: set[str] = set()
    for manifest in runs_dir.glob("*/teacher/manifest.json"):
        try:
            prints.add(str(json.loads(manifest.read_text(encoding="utf-8"))["fingerprint"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a readable stage: it restores nothing that needs a model
    return prints


def plan_prune(entries: list[CacheEntry], run_teachers: set[str], now: float,
               unused_for_s: float | None, max_bytes: int | None) -> PrunePlan:
    """Entries unused for longer than `unused_for_s`, then the least recently used until the
    rest fits `max_bytes`; teacher models that a run or a kept teacher entry reads stay."""
    removed: set[Path] = set()

    def pinned(entry: CacheEntry) -> bool:
        if entry.kind != TEACHER_MODELS:
            return False
        if any(fp.startswith(entry.name) for fp in run_teachers):
            return True
        return any(e.kind == TEACHER_STAGE and e.path not in removed
                   and e.name.startswith(entry.name) for e in entries)

    # Teacher models last in each sweep: whether one is still read depends on the teacher
    # entries removed before it.
    order = sorted(entries, key=lambda e: (e.kind == TEACHER_MODELS, e.last_used))
    if unused_for_s is not None:
        for entry in order:
            if now - entry.last_used > unused_for_s and not pinned(entry):
                removed.add(entry.path)
    if max_bytes is not None:
        total = sum(e.bytes for e in entries if e.path not in removed)
        changed = True
        while total > max_bytes and changed:  # again: a teacher entry removed frees its model
            changed = False
            for entry in sorted(entries, key=lambda e: e.last_used):
                if total <= max_bytes:
                    break
                if entry.path not in removed and not pinned(entry):
                    removed.add(entry.path)
                    total -= entry.bytes
                    changed = True
    plan = PrunePlan(max_bytes=max_bytes)
    for entry in entries:
        if entry.path in removed:
            plan.remove.append(entry)
        else:
            plan.keep.append(entry)
            if pinned(entry):
                plan.pinned.append(entry)
    return plan


def remove_entry(entry: CacheEntry) -> None:
    """Delete one entry: a paired part's record first, a folder renamed away first."""
    if entry.files:
        for path in entry.files:
            path.unlink(missing_ok=True)
        return
    drop_folder(entry.path)


def _remove_leftover(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def local_cache_root(runs_dir: str | Path) -> tuple[Path, Path]:
    """(runs folder, its cache folder); a one-line error for an object store or a folder
    that is not there."""
    where = location(runs_dir)
    if isinstance(where, RemotePath):
        raise ConfigError(f"--runs-dir {runs_dir}: the cache commands work on a local runs "
                          "folder; in an object store, expire <runs>/.cache/ with the "
                          "bucket's lifecycle rules")
    if not where.is_dir():
        raise ConfigError(f"--runs-dir {runs_dir} is not a folder: pass the runs folder "
                          "whose cache to read")
    return where, where / ".cache"


def prune(runs_dir: str | Path, unused_days: float | None, max_bytes: int | None,
          dry_run: bool = False, now: float | None = None) -> PrunePlan:
    """Plan, and unless `dry_run` apply, a prune of the runs folder's cache, holding its lock
    alone (a one-line error while a stage runs)."""
    if unused_days is None and max_bytes is None:
        raise ConfigError("cache prune: say what to remove with --unused-days DAYS and/or "
                          "--max-size SIZE (e.g. --unused-days 30 --max-size 200GB)")
    if unused_days is not None and unused_days < 0:
        raise ConfigError(f"--unused-days {unused_days:g}: give a number of days >= 0")
    runs, cache_root = local_cache_root(runs_dir)
    with cache_exclusive(cache_root):
        plan = plan_prune(cache_entries(cache_root), teacher_fingerprints(runs),
                          time.time() if now is None else now,
                          None if unused_days is None else unused_days * DAY_S, max_bytes)
        plan.leftovers = leftovers(cache_root)
        plan.leftover_bytes = sum(_tree_bytes(p) for p in plan.leftovers)
        if not dry_run:
            for entry in plan.remove:
                remove_entry(entry)
            for path in plan.leftovers:
                _remove_leftover(path)
    return plan


def parse_size(text: str | None, option: str = "--max-size") -> int | None:
    """Bytes of a size such as 200GB, 1.5TiB or 500MB (None stays None)."""
    if text is None:
        return None
    try:
        return int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        raise ConfigError(f"{option} {text!r} is not a size: give bytes with a unit, e.g. "
                          "200GB, 1.5TiB or 500MB") from None


def human_size(value: int) -> str:
    return ByteSize(value).human_readable(decimal=True)


def by_kind(entries: list[CacheEntry]) -> dict[str, list[CacheEntry]]:
    kinds: dict[str, list[CacheEntry]] = defaultdict(list)
    for entry in entries:
        kinds[entry.kind].append(entry)
    return dict(sorted(kinds.items()))


def kind_summary(entries: list[CacheEntry], now: float) -> dict[str, Any]:
    """Entries, bytes and the least recent use (days ago) of some entries."""
    return {"entries": len(entries), "bytes": sum(e.bytes for e in entries),
            "least_recently_used_days": round((now - min(e.last_used for e in entries))
                                              / DAY_S, 3) if entries else None}


def plan_summary(plan: PrunePlan, dry_run: bool) -> dict[str, Any]:
    """What a prune removed (or would) and kept, by kind: the CLI's `--json` and the flow's
    result."""
    now = time.time()
    return {"dry_run": dry_run,
            "removed": {k: kind_summary(g, now) for k, g in by_kind(plan.remove).items()},
            "kept": {k: kind_summary(g, now) for k, g in by_kind(plan.keep).items()},
            "removed_entries": len(plan.remove),
            "removed_bytes": sum(e.bytes for e in plan.remove), "kept_bytes": plan.kept_bytes,
            "pinned_teacher_models": [str(e.path) for e in plan.pinned],
            "leftovers": [str(p) for p in plan.leftovers],
            "leftover_bytes": plan.leftover_bytes, "fits": plan.fits}

