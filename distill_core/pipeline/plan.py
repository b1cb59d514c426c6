"""`textdistill plan`: what a run would do, without computing anything.

For each stage of the pipeline: whether the config runs it, its fingerprint,
whether the run folder or the cross-run cache already holds it (and where),
what it reads and how many rows it will see. A fingerprint depends on the
upstream stages' outputs, so it is known only where those are already done or
cached; beyond that the plan says "after <stage>".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from distill_core.artifacts.store import (
    MANIFEST,
    RunStore,
    named_parts,
    read_part,
    verify_folder,
)
from distill_core.config import RunConfig
from distill_core.ingest.ingest import data_dir_from
from distill_core.pipeline.order import PIPELINE
from distill_core.pipeline.runner import inputs_problem, stage_fingerprint
from distill_core.pipeline.stage import PartReuse


@dataclass
class PlannedStage:
    name: str
    runs: bool
    reads: tuple[str, ...]
    writes: str
    fingerprint: str | None = None
    status: str = "compute"  # done | cached | compute | skipped | unknown
    where: str | None = None
    rows_in: dict[str, int] = field(default_factory=dict)  # rows of each stage it reads
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class _PlanView:
    """A run store whose finished stages may sit in the cross-run cache instead of the run."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.folders: dict[str, Path] = {}

    @property
    def remote(self) -> bool:
        return self.store.remote

    @property
    def cache_root(self) -> Path:
        return self.store.cache_root

    def manifest(self, stage: str) -> dict[str, Any] | None:
        folder = self.folders.get(stage)
        return None if folder is None else self.read_folder_manifest(folder)

    @staticmethod
    def read_folder_manifest(folder: Path) -> dict[str, Any]:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))

    def read(self, stage: str, rejects: bool = False, columns: list[str] | None = None
             ) -> pa.Table:
        """The parts the (verified) manifest names: `data/` or `rejects/`, never a glob."""
        parts = named_parts(self.folders[stage], self.manifest(stage) or {}, rejects)
        return pa.concat_tables([read_part(p, columns) for p in parts])

    def stage_dir(self, stage: str) -> Path:
        return self.folders.get(stage, self.store.stage_dir(stage))

    def parts(self, stage: str, rejects: bool = False) -> list[Path]:
        """What a streaming reader reads (`pipeline/batches.py`): the manifest's parts."""
        return named_parts(self.folders[stage], self.manifest(stage) or {}, rejects)

    def verify(self, stage: str) -> str | None:
        return verify_folder(self.folders[stage], self.manifest(stage) or {})


def _check_headers(cfg: RunConfig) -> None:
    """What would fail the run's ingest as a whole (a missing file, a column the header
    lacks) fails the plan too."""
    if cfg.is_instruction:
        from distill_core.pipeline.stages.instruct_ingest import check_headers

        check_headers(cfg)
        return
    from distill_core.ingest.ingest import check_headers as check_dataset_headers
    from distill_core.pipeline.stages.ingest import dataset_spec

    check_dataset_headers(dataset_spec(cfg), data_dir_from(cfg.data.data_dir))


def plan_run(cfg: RunConfig, runs_dir: str | Path) -> list[PlannedStage]:
    """The plan of `cfg`'s run in `runs_dir`; raises the config's or data's error."""
    _check_headers(cfg)
    store = RunStore(runs_dir, cfg.run_id())
    view = _PlanView(store)
    planned, missing = [], None
    for stage in PIPELINE:
        item = PlannedStage(stage.name, stage.enabled(cfg), stage.reads(cfg), stage.writes)
        planned.append(item)
        if not item.runs:
            item.status = "skipped"
            item.note = "not needed by this config"
            continue
        item.rows_in = {s: rows for s in item.reads if (rows := (view.manifest(s) or {}).get(
            "counts", {}).get("rows_out")) is not None}
        if missing is not None:
            item.status, item.note = "unknown", f"after {missing}"
            continue
        fp, _ = stage_fingerprint(stage, cfg, view)  # type: ignore[arg-type]
        item.fingerprint = fp
        check = inputs_problem(view, stage.reads(cfg))  # type: ignore[arg-type]
        entry = store.cache_entry(stage.name, fp) if stage.cached else None
        refused = None if entry is None else check(_PlanView.read_folder_manifest(entry))
        if store.is_complete(stage.name, fp, check):
            item.status, item.where = "done", str(store.stage_dir(stage.name))
            view.folders[stage.name] = store.stage_dir(stage.name)
        elif entry is not None and refused is None:
            item.status, item.where = "cached", str(entry)
            view.folders[stage.name] = entry
        else:
            missing = stage.name
            if stage.name in store.invalid:
                item.note = f"recompute: {store.invalid[stage.name]}"
            elif refused is not None:
                item.note = f"recompute: cache entry {entry}: {refused}"
            elif stage.part_reuse is not None:
                _note_part_reuse(item, stage.part_reuse(cfg, view))  # type: ignore[arg-type]
    return planned


def _note_part_reuse(item: PlannedStage, reuse: PartReuse | None) -> None:
    """A stage whose per-part cache holds every part is "cached" (its parts are copied, none
    computed); later stages stay unknown, as their fingerprints hash the copied parts."""
    if reuse is None or reuse.held == 0:
        return
    if reuse.held == reuse.parts:
        item.status, item.where = "cached", reuse.folder
        item.note = f"all {reuse.parts} input parts in the per-part cache: copied, not computed"
    else:
        item.note = (f"{reuse.held} of {reuse.parts} input parts from the per-part cache "
                     f"({reuse.folder}), the others computed")
