"""`export_run`: a finished run folder -> a `datasets` folder with its card (and a hub push).

The order fails fast: the run is read and the splits chosen, OUT is checked and, with a
repo id, the hub is checked before anything is built or written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from distill_core.export.card import build_card
from distill_core.export.dataset import FinishedRun, choose_splits, dataset_dict
from distill_core.export.hub import check_push, push_export
from distill_core.export.writer import check_target, write_export


@dataclass
class ExportResult:
    """Where the export went, its rows per split, and the hub URL when pushed."""

    folder: Path
    rows: dict[str, int] = field(default_factory=dict)
    url: str | None = None


def export_run(run_dir: str | Path, out: str | Path, replicate: int | None = None,
               all_replicates: bool = False, overwrite: bool = False,
               push: str | None = None) -> ExportResult:
    """Export the distilled set of `run_dir` to `out` (one replicate as `train` by default,
    `--replicate N` that one, `all_replicates` one `seed_<seed>` split each)."""
    run = FinishedRun.open(run_dir)
    splits = choose_splits(run, replicate, all_replicates)
    out = Path(out)
    check_target(out, overwrite, run.store.root)
    if push is not None:
        check_push(push)
    data = dataset_dict(run, splits)
    folder = write_export(out, data, build_card(run, data, splits))
    result = ExportResult(folder, {name: split.num_rows for name, split in data.items()})
    if push is not None:
        result.url = push_export(data, folder, push)
    return result
