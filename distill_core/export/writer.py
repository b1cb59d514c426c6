"""Write an export folder that `load_from_disk` and `load_dataset` both read.

Layout: `save_to_disk`'s (`dataset_dict.json`, one Arrow folder per split), the same rows
as Parquet under `data/<split>-00000-of-00001.parquet` (the hub's layout), and `README.md`,
whose `configs` metadata points `load_dataset` at the Parquet files. The folder is written
under a temporary name beside OUT and renamed into place, so a crash leaves no half export.
An OUT that exists is replaced only with `overwrite` and only when it holds a saved
`DatasetDict` (an earlier export), never another folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from distill_core.errors import ArtifactError, StorageError, storage_error

DATASET_DICT_JSON = "dataset_dict.json"


def check_target(out: Path, overwrite: bool, run_dir: Any) -> None:
    """Refuse an OUT that is a file, is or holds the (local) run folder, or is non-empty
    (without `overwrite`; with it, anything but an earlier export)."""
    out = out.resolve()
    run_dir = run_dir.resolve() if isinstance(run_dir, Path) else None  # an object store's
    if run_dir is not None and (out == run_dir or out in run_dir.parents):
        raise ArtifactError(f"{out}: the export would replace the run folder {run_dir} (OUT is or "
                            "holds it): pass another OUT folder")
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out} is a file: pass a folder for OUT (it is created)")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ArtifactError(f"{out} exists and is not empty: pass --overwrite to replace an "
                            "earlier export, or another OUT folder")
    if not (out / DATASET_DICT_JSON).is_file():
        raise ArtifactError(f"{out} is not an earlier export (no {DATASET_DICT_JSON}); "
                            "--overwrite replaces only those: pass another OUT folder")


def parquet_name(split: str) -> str:
    return f"{split}-00000-of-00001.parquet"


def _fill(folder: Path, dataset_dict: Any, card: str) -> None:
    dataset_dict.save_to_disk(str(folder))
    (folder / "data").mkdir()
    for split, dataset in dataset_dict.items():
        dataset.to_parquet(str(folder / "data" / parquet_name(split)))
    (folder / "README.md").write_text(card, encoding="utf-8")


def write_export(out: Path, dataset_dict: Any, card: str) -> Path:
    """Write the folder (after `check_target`) and return it."""
    out = out.resolve()
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    tmp = out.with_name(f".{out.name}.tmp-{tag}")
    stale = out.with_name(f".{out.name}.stale-{tag}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()  # can this folder be written at all? (datasets makes it again below)
        tmp.rmdir()
    except OSError as exc:
        raise storage_error(exc, out) or StorageError(
            f"cannot write the export folder {out}: {exc.strerror or exc}; pass an OUT folder "
            "you can write") from None
    try:
        _fill(tmp, dataset_dict, card)
        if out.is_dir():
            out.rename(stale)  # an empty folder, or an earlier export (checked before)
        try:
            tmp.rename(out)
        except OSError:
            if stale.exists() and not out.exists():
                stale.rename(out)  # keep the earlier export
            raise
    finally:
        for leftover in (tmp, stale):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return out
