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
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distill_core.errors import (
    ConfigError,
    StorageError,
    TextDistillError,
    storage_error,
    user_error,
)
from flows.cli_views import (
    CliConsole,
    StageLog,
    auto_choice_line,
    bench_tables,
    funnel_table,
    print_lineage,
    progress_bars,
    ray_contacted,
    reuse_summary,
    scores_table,
)
from flows.console_logging import hide_expected_failures_on_console, quiet_console_after_failure
from flows.rerun import NO_FLOW_RUN, finished_run, prefect_server_configured, report_is_current

if TYPE_CHECKING:
    from distill_core.config import RunConfig

app = typer.Typer(no_args_is_help=True, help="Text dataset distillation with full lineage.")
console: Console = CliConsole()
error_console: Console = CliConsole(stderr=True)  # an error line goes to stderr

DebugOption = Annotated[bool, typer.Option(
    "--debug", help="On an expected error, show its traceback too.")]


def _fail(error: BaseException) -> None:
    """Print `error` as one line on stderr and exit with status 2."""
    message = escape(" ".join(str(error).split()))  # a value like [1, 2] is no markup
    error_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False,
                  soft_wrap=True)
    quiet_console_after_failure()
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


def version_line() -> str:
    """textdistill's version and those of the libraries a run depends on (read from the
    installed packages' metadata: nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    libraries = ", ".join(f"{p} {of(p)}" for p in ("torch", "prefect", "ray"))
    return (f"textdistill {of('textdistill')} ({libraries}, python "
            f"{sys.version.split()[0]})")


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(version_line() + "\n")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Show the version (and torch, prefect, ray versions) and exit.")] = False) -> None:
    """Text dataset distillation with full lineage."""


def _usable_runs_dir(runs_dir: str | Path, create: bool = True) -> None:
    """The runs folder is a folder (created when missing), or an object store URI whose
    endpoint answers and whose bucket exists. Writability is checked when the first write
    happens: a finished run in a read-only folder still reads."""
    from distill_core.artifacts.location import RemotePath, check_reachable, location

    runs_dir = location(runs_dir)
    if isinstance(runs_dir, RemotePath):
        check_reachable(runs_dir)
        return
    if runs_dir.exists() and not runs_dir.is_dir():
        raise StorageError(f"--runs-dir {runs_dir} is a file, not a folder: pass a folder "
                           "(it is created when missing)")
    if create:
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, runs_dir) or StorageError(
                f"cannot create the runs folder {runs_dir}: {exc.strerror or exc}; pass "
                "--runs-dir DIR to a folder you can write") from None


def _quiet_libraries(verbose: bool, console_level: str = "WARNING") -> None:
    """Keep the terminal for progress bars: Prefect's console handler shows `console_level`
    and up, transformers errors only. Prefect's loggers stay at PREFECT_LOGGING_LEVEL (INFO by
    default), so the flow and task runs' INFO logs still reach the Prefect server."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", console_level)
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        # libraries' own bars (model2vec's distillation, ...): the stages report progress
        os.environ.setdefault("TQDM_DISABLE", "1")
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
RunsDirOption = Annotated[str, typer.Option(
    help="Where run folders go: a folder, or an object store URI (s3://BUCKET/PATH).")]
DataDirOption = Annotated[Path | None, typer.Option(
    help="Local dataset folder (offline); default $TEXTDISTILL_DATA_DIR.")]


@app.command()
def run(
    config: RunConfigArg,
    set_: SetOption = None,
    runs_dir: RunsDirOption = "runs",
    data_dir: DataDirOption = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect and library logs.")] = False,
    debug: DebugOption = False,
) -> None:
    """Distil a dataset as configured; prints scores and the run folder."""
    _quiet_libraries(verbose)
    with _expected_errors(debug, runs_dir):
        _run(config, set_, runs_dir, data_dir, debug)


def _run(config: Path, set_: list[str] | None, runs_dir: str, data_dir: Path | None,
         debug: bool) -> None:
    """Run the flow; a rerun with every stage done and no Prefect server configured is
    answered from the run folder instead (`flows/rerun.py`)."""
    from distill_core.config import load_config

    overrides = list(set_ or [])
    if data_dir is not None:
        overrides.append(f"data.data_dir={data_dir}")
    cfg = load_config(config, overrides)
    _usable_runs_dir(runs_dir)
    if not prefect_server_configured() and (finished := finished_run(cfg, runs_dir)):
        _show_finished_run(cfg, *finished)  # nothing to run: no Prefect server, no models
        return
    from distill_core.signals.models import require_model_folder
    from distill_core.signals.static_encoder import base_encoder

    require_model_folder(base_encoder(cfg.signals.model))  # before any stage starts
    from prefect import tags

    from distill_core.pipeline.order import active_stages
    from flows.distill import distill, run_tags
    from flows.prefect_setup import migrate_local_database

    if not debug:
        hide_expected_failures_on_console()
    stages = tuple(s.name for s in active_stages(cfg))
    migrate_local_database()  # concurrent first runs must not race on Prefect's migrations
    with progress_bars(console, stages) as log, tags(*run_tags(cfg)):
        result = distill(cfg.model_dump(mode="json"), str(runs_dir))
    _print_run(cfg, result["run_dir"], result["report"], stages, log)


def _show_finished_run(cfg: RunConfig, run_dir: Any, stages: tuple[str, ...]) -> None:
    """A run whose every stage is done: its outcome from the folder, the report rebuilt only
    when missing or older than a stage, and why no Prefect flow run was recorded."""
    report = run_dir / "report.md"
    if not report_is_current(run_dir, stages):
        from distill_core.report import write_report

        report = write_report(run_dir)
    _print_run(cfg, str(run_dir), str(report), stages,
               StageLog({stage: "resumed" for stage in stages}))
    console.print(NO_FLOW_RUN, markup=False, highlight=False, soft_wrap=True)


def _print_run(cfg: RunConfig, run_dir: str, report: str, stages: tuple[str, ...],
               log: StageLog) -> None:
    """The scores, the funnel, each stage's wall time or reuse, the reuse line, the paths."""
    from distill_core.artifacts.store import RunStore
    from distill_core.audit import RunAudit

    store = RunStore.open(run_dir)
    evaluate = store.manifest("evaluate")
    if evaluate is not None and "instruction_summary" in evaluate:
        from flows.cli_views import instruction_scores_table

        console.print(instruction_scores_table(evaluate["instruction_summary"]))
    elif evaluate is not None:
        console.print(scores_table(evaluate["summary"]))
        choice = auto_choice_line((store.manifest("synthesize") or {}).get("auto"))
        if choice:
            console.print(choice, markup=False, highlight=False, soft_wrap=True)
    console.print(funnel_table(RunAudit(run_dir).funnel()))
    timings = ", ".join(
        f"{s} {log.status[s]}" if log.status.get(s) in ("resumed", "cached")
        else f"{s} {(store.manifest(s) or {}).get('wall_time_s', 0):.1f}s"
        for s in stages if store.manifest(s))
    console.print(f"stage wall times: {timings}", soft_wrap=True)
    console.print(reuse_summary(stages, log, run_dir, cfg.compute.backend, ray_contacted()),
                  markup=False, highlight=False)
    console.print(f"run folder: [bold]{escape(str(run_dir))}[/]\nreport: "
                  f"{escape(str(report))}")


@app.command()
def plan(
    config: RunConfigArg,
    set_: SetOption = None,
    runs_dir: RunsDirOption = "runs",
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
                      " - ".join(part for part in (p.where, p.note) if part))
    console.print(table)


@app.command()
def audit(
    run_dir: Annotated[str, typer.Argument(
        help="A run folder, or its object store URI (s3://BUCKET/PATH/RUN).")],
    example: Annotated[str | None, typer.Option(
        help="Show the lineage of this example_id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    debug: DebugOption = False,
) -> None:
    """The funnel of a run (rows per stage, rejects per reason) or one row's lineage."""
    with _expected_errors(debug, run_dir):
        _audit(run_dir, example, as_json)


def _audit(run_dir: str, example: str | None, as_json: bool) -> None:
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
        console.print(f"run folder: {auditor.store.root}", markup=False, highlight=False)
        console.print(funnel_table(funnel))
        for check in (f for f in funnel if f.get("handoff")):
            console.print(f"{check['stage']}: rows in {check['rows_in']}, upstream "
                          f"{check['upstream_rows']} -> "
                          f"{'ok' if check['balanced'] else 'MISMATCH'}")
        for stage, problem in auditor.problems.items():
            console.print(f"[red]{stage}: {escape(problem)}[/] (rerun the run's command to "
                          "recompute)")
    if not balanced or auditor.problems:
        raise typer.Exit(code=1)  # the run does not account for every row, or does not verify


ColumnOption = Annotated[str | None, typer.Option(
    help="Data file: the column holding it (guessed from the usual names when omitted).")]


@app.command()
def validate(
    target: Annotated[Path | None, typer.Argument(
        metavar="[CONFIG|DATA_FILE]",
        help="A run config (.yaml/.yml; the default config when omitted) or one data file "
             "(.csv, .tsv, .json, .jsonl, .parquet, .txt; also .gz/.zst).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config key, e.g. --set data.dataset=mrpc.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Local dataset folder.")] = None,
    text: ColumnOption = None,
    text_pair: Annotated[str | None, typer.Option(
        help="Data file: the column holding a pair's second text.")] = None,
    label: ColumnOption = None,
    label_map: Annotated[list[str] | None, typer.Option(
        help="Data file: RAW=NAME label names, e.g. --label-map 0=negative,1=positive; "
             "other raw labels are unknown_label.")] = None,
    file_format: Annotated[str | None, typer.Option(
        "--format", help="Data file: csv, tsv, json, jsonl, parquet or label_text, when the "
                         "suffix does not say (.txt: label_text).")] = None,
    quoting: Annotated[bool, typer.Option(
        help="Data file, CSV/TSV: honour double quotes (--no-quoting for GLUE TSVs).")] = True,
    columns: Annotated[str | None, typer.Option(
        help="Data file, CSV/TSV without a header line: its column names, comma-separated, "
             "e.g. --columns label,title,description.")] = None,
    limit: Annotated[int, typer.Option(help="Problems to list (all are counted).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    debug: DebugOption = False,
) -> None:
    """Check a dataset, or one data file, against the ingest rules without running anything.

    Lists every row ingest would reject with its file, row, field and reason; exits 1 when
    there is any, 2 when a file cannot be read at all or a run could not use the training
    split (no usable row, one class: said on stderr after the listing).
    """
    from distill_core.config import load_config
    from distill_core.errors import IngestError
    from distill_core.ingest import ingest_dataset, resolve_dataset
    from distill_core.ingest.ingest import data_dir_from
    from flows.cli_data import ingest_data_file, is_data_file
    from flows.cli_views import print_validation

    overrides = list(set_ or []) + ([f"data.data_dir={data_dir}"] if data_dir else [])
    guessed: list[str] = []
    # A data file by its suffix, or any file whose format --format names.
    data_file = target is not None and (is_data_file(target) or file_format is not None)
    with _expected_errors(debug):
        cfg = load_config(None if data_file else target, overrides)
        if data_file:
            result, guessed = ingest_data_file(
                target, text, text_pair, label, label_map,
                {"format": file_format, "quoting": quoting, "header": columns is None,
                 "columns": columns.split(",") if columns else None}, cfg.ingest.max_chars)
        else:
            if given := [name for name, value in (
                    ("--text", text), ("--text-pair", text_pair), ("--label", label),
                    ("--label-map", label_map), ("--format", file_format),
                    ("--columns", columns)) if value]:
                raise ConfigError(f"{', '.join(given)} describe a data file; "
                                  f"{target or 'the default config'} is a config: put the "
                                  "columns in its data.train / data.eval file sources")
            if cfg.is_instruction:
                from distill_core.pipeline.stages.instruct_ingest import validation

                result = validation(cfg)
            else:
                spec = resolve_dataset(cfg.data.dataset, cfg.data.train, cfg.data.eval,
                                       cfg.data.label_names)
                result = ingest_dataset(spec, data_dir_from(cfg.data.data_dir),
                                        max_chars=cfg.ingest.max_chars, note_unusable=True)
    problems = print_validation(console, result, guessed, limit, as_json)
    if result.unusable:  # every reject is listed above; a run would stop at ingest
        _fail(IngestError("; ".join(result.unusable)))
    if problems:
        raise typer.Exit(code=1)  # some rows would be rejected


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
    from distill_core.bench.instruction import is_instruction_bench, read_bench_yaml

    overrides = list(set_ or []) + ([f"data_dir={data_dir}"] if data_dir else [])
    if is_instruction_bench(data := read_bench_yaml(config)):
        _instruction_bench(config, data, overrides, runs_dir, debug)
        return
    cfg = load_bench_config(config, overrides)
    _usable_runs_dir(runs_dir)
    from flows.benchmark import benchmark
    from flows.prefect_setup import migrate_local_database

    if not debug:
        hide_expected_failures_on_console()
    with progress_bars(console):
        migrate_local_database()
        result = benchmark(cfg.model_dump(mode="json"), str(runs_dir))
    summary = json.loads((Path(result["dir"]) / "summary.json").read_text(encoding="utf-8"))
    for table in bench_tables(summary, cfg.soft_labels):
        console.print(table)
    console.print(f"{result['cells']} cells, {result['cells_scored']} scored now; benchmark "
                  f"folder: [bold]{result['dir']}[/]\nreport: {result['report']} "
                  f"(HTML: {result['report_html']})")


def _instruction_bench(config: Path, data: dict[str, Any], overrides: list[str],
                       runs_dir: Path, debug: bool) -> None:
    """`bench` on instruction data: the grid's runs through evaluate, then its report."""
    from distill_core.bench.instruction import load_instruction_bench
    from flows.cli_views import instruction_bench_tables

    cfg = load_instruction_bench(config, data, overrides)
    _usable_runs_dir(runs_dir)
    from flows.instruction_benchmark import instruction_benchmark
    from flows.prefect_setup import migrate_local_database

    if not debug:
        hide_expected_failures_on_console()
    with progress_bars(console):
        migrate_local_database()
        result = instruction_benchmark(cfg.model_dump(mode="json"), str(runs_dir))
    summary = json.loads((Path(result["dir"]) / "summary.json").read_text(encoding="utf-8"))
    for table in instruction_bench_tables(summary, cfg.dataset_names()):
        console.print(table)
    runs = result["runs"]
    console.print(f"{runs} run{'s' * (runs != 1)} ({result['runs_computed']} computed now), "
                  f"{result['fits']} fits; benchmark folder: [bold]{result['dir']}[/]\n"
                  f"report: {result['report']} (HTML: {result['report_html']})")


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
    _quiet_libraries(verbose, console_level="INFO")  # serving: say which runs start and end
    os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
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

    with _expected_errors(False):  # e.g. the server at PREFECT_API_URL does not answer
        prefect_serve(*deployments, limit=limit)


@app.command()
def report(run_dir: Annotated[str, typer.Argument(
        help="A run folder (or its object store URI) or a benchmark folder.")],
        debug: DebugOption = False) -> None:
    """Rebuild the report of a run folder (report.md) or a benchmark folder (report.md,
    report.html, plots) from its artifacts, and print it."""
    from distill_core.artifacts.location import location
    from distill_core.report import write_report

    with _expected_errors(debug, run_dir):
        where = location(run_dir)
        if isinstance(where, Path) and (where / "bench.json").is_file():
            from distill_core.bench.grid import rebuild_report

            text = rebuild_report(run_dir).read_text(encoding="utf-8")
        else:  # rewritten only when changed: a finished run in a read-only folder reports
            text = write_report(run_dir).read_text(encoding="utf-8")
    console.print(text, markup=False, highlight=False)


from flows.cli_export import export as _export  # noqa: E402

app.command(name="export")(_export)

from flows.cli_cache import cache_app  # noqa: E402

app.add_typer(cache_app, name="cache")

if __name__ == "__main__":
    app()
