"""`textdistill export RUN_DIR OUT`: a finished run's distilled set as a `datasets` folder.

Registered on the app in `flows/cli.py`; the work is `distill_core.export.export_run`.
Expected failures (not a run, an unfinished run, OUT in the way, no hub) are one line and
exit status 2, like every command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def export(
    run_dir: Annotated[str, typer.Argument(
        help="A finished run folder, or its object store URI (s3://BUCKET/PATH/RUN).")],
    out: Annotated[Path, typer.Argument(help="The folder to write (created; must be absent "
                                             "or empty unless --overwrite).")],
    replicate: Annotated[int | None, typer.Option(
        help="Export this replicate (0 = the first seed) as the train split.")] = None,
    all_replicates: Annotated[bool, typer.Option(
        "--all-replicates", help="Export every replicate, one split each (seed_<seed>).")
    ] = False,
    push: Annotated[str | None, typer.Option(
        help="Also push to this Hugging Face hub dataset repo (owner/name).")] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Replace OUT when it holds an earlier export.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="On an expected error, show its traceback too.")] = False,
) -> None:
    """Write the distilled set as a Hugging Face `datasets` folder with a dataset card
    (load_from_disk and load_dataset both read it); --push also uploads it to the hub."""
    from flows.cli import _expected_errors, console

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with _expected_errors(debug, out):
        import datasets

        from distill_core.export import export_run

        datasets.disable_progress_bars()
        result = export_run(run_dir, out, replicate=replicate, all_replicates=all_replicates,
                            overwrite=overwrite, push=push)
    splits = ", ".join(f"{name} ({rows} rows)" for name, rows in result.rows.items())
    console.print(f"exported {splits} to [bold]{result.folder}[/] (card: README.md); read it "
                  f"with datasets.load_from_disk or datasets.load_dataset", soft_wrap=True)
    if result.url:
        console.print(f"pushed to {result.url}", soft_wrap=True)
