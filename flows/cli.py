"""`textdistill`: run a distillation, audit a run folder, rebuild its report.

Expected failures (a bad config, a missing column, no network, a full disk, a
read-only or unwritable runs folder, a damaged manifest) print one line that
names the thing and what to do, and exit with status 2: no traceback on either
stream, Prefect's own failure logs included (they still reach the Prefect
server). `--debug` shows the traceback too. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from distill_core.errors import StorageError, TextDistillError, user_error
from flows.cli_views import funnel_table, print_lineage, progress_bars, scores_table
from flows.console_logging import hide_expected_failures_on_console

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Text dataset distillation with full lineage.")
console = Console()

DebugOption = Annotated[bool, typer.Option(
    "--debug", help="On an expected error, show its traceback too.")]


def _fail(error: BaseException) -> None:
    """Print `error` as one line and exit with status 2."""
    message = " ".join(str(error).split())
    console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False,
                  soft_wrap=True)
    raise typer.Exit(code=2)


@contextmanager
def _expected_errors(debug: bool, where: str | Path | None = None) -> Iterator[None]:
    """Expected failures end the command with one line and status 2 (`--debug`: their
    traceback first, on stderr); bugs propagate with theirs. `where` names the folder being
    written when an OS error does not say which file."""
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        error = user_error(exc, where)
        if error is None:
            raise
        if debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        _fail(error)


def _usable_runs_dir(runs_dir: Path, create: bool = True) -> None:
    """The runs folder is a folder (created when missing). Writability is checked when the
    first write happens: a finished run in a read-only folder still reads."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise StorageError(f"--runs-dir {runs_dir} is a file, not a folder: pass a folder "
                           "(it is created when missing)")
    if create:
        runs_dir.mkdir(parents=True, exist_ok=True)


def _quiet_libraries(verbose: bool) -> None:
    """Keep the terminal for progress bars: Prefect and transformers log warnings only."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary server Prefect starts when no PREFECT_API_URL is set needs more than the
    # default 20 s on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    # A Prefect server that textdistill starts listens on loopback unless told otherwise.
    os.environ.setdefault("PREFECT_SERVER_API_HOST", "127.0.0.1")


# The arguments `run` and `plan` share.
RunConfigArg = Annotated[Path, typer.Argument(help="Run config (YAML).")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config key, e.g. --set synthesize.method=random.")]
RunsDirOption = Annotated[Path, typer.Option(help="Where run folders go.")]
DataDirOption = Annotated[Path | None, typer.Option(
    help="Local dataset folder (offline); default $TEXTDISTILL_DATA_DIR.")]


@app.command()
def run(
    config: RunConfigArg,
    set_: SetOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    data_dir: DataDirOption = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect and library logs.")] = False,
    debug: DebugOption = False,
) -> None:
    """Distil a dataset as configured; prints scores and the run folder."""
    _quiet_libraries(verbose)
    with _expected_errors(debug, runs_dir):
        _run(config, set_, runs_dir, data_dir, debug)


def _run(config: Path, set_: list[str] | None, runs_dir: Path, data_dir: Path | None,
         debug: bool) -> None:
    from distill_core.artifacts.store import RunStore
    from distill_core.audit import RunAudit
    from distill_core.config import load_config

    overrides = list(set_ or [])
    if data_dir is not None:
        overrides.append(f"data.data_dir={data_dir}")
    cfg = load_config(config, overrides)
    _usable_runs_dir(runs_dir)
    from prefect import tags

    from distill_core.pipeline.order import active_stages
    from flows.distill import distill, run_tags
    from flows.prefect_setup import migrate_local_database

    if not debug:
        hide_expected_failures_on_console()
    stages = tuple(s.name for s in active_stages(cfg))
    migrate_local_database()  # concurrent first runs must not race on Prefect's migrations
    with progress_bars(console, stages), tags(*run_tags(cfg)):
        result = distill(cfg.model_dump(mode="json"), str(runs_dir))
    run_dir = result["run_dir"]
    store = RunStore.open(run_dir)
    evaluate = store.manifest("evaluate")
    if evaluate is not None:
        console.print(scores_table(evaluate["summary"]))
    console.print(funnel_table(RunAudit(run_dir).funnel()))
    timings = ", ".join(f"{s} {(store.manifest(s) or {}).get('wall_time_s', 0):.1f}s"
                        + (" (reused)" if (store.manifest(s) or {}).get("cache", {}).get("hit")
                           else "") for s in stages if store.manifest(s))
    console.print(f"stage wall times: {timings}")
    console.print(f"run folder: [bold]{run_dir}[/]\nreport: {result['report']}")


@app.command()
def plan(
    config: RunConfigArg,
    set_: SetOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    debug: DebugOption = False,
) -> None:
    """Dry run: the stages a run would execute, their fingerprints, what is already done or
    cached (and where), what each reads and the rows it will see. Computes nothing; exits 2
    on a config or data-source problem."""
    from distill_core.config import load_config
    from distill_core.model_limits import check_model_limits
    from distill_core.pipeline.plan import plan_run

    overrides = list(set_ or []) + ([f"data.data_dir={data_dir}"] if data_dir else [])
    with _expected_errors(debug, runs_dir):
        cfg = load_config(config, overrides)
        check_model_limits(cfg)
        _usable_runs_dir(runs_dir, create=False)
        planned = plan_run(cfg, runs_dir)
    if as_json:
        sys.stdout.write(json.dumps({"run_id": cfg.run_id(),
                                     "stages": [p.as_dict() for p in planned]}, indent=2) + "\n")
        return
    table = Table(title=f"Plan of run {cfg.run_id()} in {runs_dir}")
    for column in ("stage", "status", "fingerprint", "reads", "rows in", "where / note"):
        table.add_column(column)
    for p in planned:
        table.add_row(p.name, p.status, (p.fingerprint or "-")[:12], ", ".join(p.reads) or "files",
                      ", ".join(f"{k} {v}" for k, v in p.rows_in.items()) or "-",
                      p.where or p.note)
    console.print(table)


@app.command()
def audit(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    example: Annotated[str | None, typer.Option(
        help="Show the lineage of this example_id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    debug: DebugOption = False,
) -> None:
    """The funnel of a run (rows per stage, rejects per reason) or one row's lineage."""
    with _expected_errors(debug, run_dir):
        _audit(run_dir, example, as_json)


def _audit(run_dir: Path, example: str | None, as_json: bool) -> None:
    from distill_core.audit import RunAudit

    auditor = RunAudit(run_dir)
    if example is not None:
        lineage = auditor.lineage(example)
        if as_json:
            sys.stdout.write(json.dumps(lineage, indent=2, default=str) + "\n")
        else:
            print_lineage(console, lineage)
        if not lineage["found"]:
            raise typer.Exit(code=1)
        return
    funnel = auditor.funnel()
    balanced = all(f["balanced"] for f in funnel)
    if as_json:
        payload = {"run_dir": str(auditor.store.root), "funnel": funnel,
                   "balanced": balanced, "verified": not auditor.problems,
                   "problems": auditor.problems, "top_sources": auditor.top_sources()}
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        console.print(funnel_table(funnel))
        for check in (f for f in funnel if f.get("handoff")):
            console.print(f"{check['stage']}: rows in {check['rows_in']}, upstream "
                          f"{check['upstream_rows']} -> "
                          f"{'ok' if check['balanced'] else 'MISMATCH'}")
        for stage, problem in auditor.problems.items():
            console.print(f"[red]{stage}: {problem}[/] (rerun the run's command to recompute)")
    if not balanced or auditor.problems:
        raise typer.Exit(code=1)  # the run does not account for every row, or does not verify


@app.command()
def validate(
    config: Annotated[Path | None, typer.Argument(help="Run config (YAML); default config "
                                                       "when omitted.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config key, e.g. --set data.dataset=mrpc.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Local dataset folder.")] = None,
    limit: Annotated[int, typer.Option(help="Problems to list (all are counted).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    debug: DebugOption = False,
) -> None:
    """Check a dataset against the ingest rules without running anything.

    Lists every row ingest would reject with its file, row, field and reason; exits 1 when
    there is any, 2 when a file cannot be read at all.
    """
    from distill_core.config import load_config
    from distill_core.ingest import ingest_dataset, resolve_dataset
    from distill_core.ingest.ingest import data_dir_from

    overrides = list(set_ or []) + ([f"data.data_dir={data_dir}"] if data_dir else [])
    with _expected_errors(debug):
        cfg = load_config(config, overrides)
        spec = resolve_dataset(cfg.data.dataset, cfg.data.train, cfg.data.eval,
                               cfg.data.label_names)
        result = ingest_dataset(spec, data_dir_from(cfg.data.data_dir),
                                max_chars=cfg.ingest.max_chars)
    problems = result.rejects.to_pylist()
    if as_json:
        sys.stdout.write(json.dumps({"sources": result.sources, "label_names": result.label_names,
                                     "problems": problems}, indent=2, default=str) + "\n")
    else:
        for source in result.sources:
            console.print(f"{source['split']}: {source['source']}: {source['rows_read']} rows, "
                          f"{source['rows_out']} usable, {source['rows_rejected']} rejected",
                          soft_wrap=True)
        table = Table(title=f"{len(problems)} problem(s)")
        for column in ("file", "row", "field", "reason", "detail"):
            table.add_column(column)
        for row in problems[:limit]:
            table.add_row(row["source"], str(row["source_row"]), row["field"] or "-",
                          row["reason"], row["detail"] or "")
        if problems:
            console.print(table)
        console.print(f"labels: {', '.join(result.label_names)}")
    if problems:
        raise typer.Exit(code=1)


@app.command()
def bench(
    config: Annotated[Path, typer.Argument(help="Benchmark config (YAML), e.g. "
                                                "configs/bench-standard.yaml.")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a key, e.g. --set budgets=[5,10].")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run and benchmark folders go.")] = Path(
        "runs"),
    data_dir: Annotated[Path | None, typer.Option(
        help="Local dataset folder (offline); default $TEXTDISTILL_DATA_DIR.")] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect and library logs.")] = False,
    debug: DebugOption = False,
) -> None:
    """Run (or resume) a benchmark grid; prints the results tables and the report's path."""
    _quiet_libraries(verbose)
    with _expected_errors(debug, runs_dir):
        _bench(config, set_, runs_dir, data_dir, debug)


def _bench(config: Path, set_: list[str] | None, runs_dir: Path, data_dir: Path | None,
           debug: bool) -> None:
    from distill_core.bench.config import load_bench_config

    overrides = list(set_ or []) + ([f"data_dir={data_dir}"] if data_dir else [])
    cfg = load_bench_config(config, overrides)
    _usable_runs_dir(runs_dir)
    from flows.benchmark import benchmark
    from flows.prefect_setup import migrate_local_database

    if not debug:
        hide_expected_failures_on_console()
    with progress_bars(console):
        migrate_local_database()
        result = benchmark(cfg.model_dump(mode="json"), str(runs_dir))
    from distill_core.bench.report import panel_tables_md

    summary = json.loads((Path(result["dir"]) / "summary.json").read_text())
    console.print(panel_tables_md(summary), markup=False, highlight=False)
    console.print(f"{result['cells']} cells, {result['cells_scored']} scored now; benchmark "
                  f"folder: [bold]{result['dir']}[/]\nreport: {result['report']} "
                  f"(HTML: {result['report_html']})")


@app.command()
def serve(
    config: Annotated[Path, typer.Argument(help="Serve config (YAML), e.g. configs/serve.yaml.")],
    limit: Annotated[int | None, typer.Option(help="Most flow runs at once.")] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect and library logs.")] = False,
) -> None:
    """Register the distill/benchmark deployments on their cron schedules and serve them.

    Needs a Prefect server (PREFECT_API_URL); keeps running and executes each scheduled
    run in this process until stopped (Ctrl-C pauses the schedules).
    """
    _quiet_libraries(verbose)
    os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"  # serving: say which runs start and end
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        _fail(TextDistillError(
            "serve needs a Prefect server to hold the schedules: start one (prefect server "
            "start --host 127.0.0.1) and set PREFECT_API_URL=http://127.0.0.1:4200/api"))
    from distill_core.config import read_yaml_file
    from flows.serve import build_deployments

    try:
        read_yaml_file(config, "serve config")  # UTF-8, valid YAML, no key given twice
        deployments = build_deployments(config)
    except TextDistillError as exc:
        _fail(exc)
    from prefect import serve as prefect_serve

    prefect_serve(*deployments, limit=limit)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(
        help="A run folder or a benchmark folder.")], debug: DebugOption = False) -> None:
    """Rebuild the report of a run folder (report.md) or a benchmark folder (report.md,
    report.html, plots) from its artifacts, and print it."""
    from distill_core.report import write_report

    with _expected_errors(debug, run_dir):
        if (run_dir / "bench.json").is_file():
            from distill_core.bench.grid import rebuild_report

            text = rebuild_report(run_dir).read_text(encoding="utf-8")
        else:  # rewritten only when changed: a finished run in a read-only folder reports
            text = write_report(run_dir).read_text(encoding="utf-8")
    console.print(text, markup=False, highlight=False)


if __name__ == "__main__":
    app()
