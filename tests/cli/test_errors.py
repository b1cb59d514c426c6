"""One error path: every expected failure (config, data, disk, a damaged artifact) is one line
naming the thing and what to do, exit status 2 and no traceback on stdout or stderr, Prefect's
own failure logs included, unless `--debug` is given; a bug keeps its traceback.

The CLI runs in a real subprocess against the session's Prefect test server, as a user runs
it: typer's CliRunner does not see Prefect's console logging. Tests run as root, which ignores
permission bits, and cannot mount a full or read-only file system, so disk-full, read-only and
permission-denied errors are injected by `tests/cli/inject.py` at the calls that write (the
same OSError the OS or pyarrow raises), still in a subprocess.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.rerun import NO_FLOW_RUN

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
INJECT = str(Path(__file__).with_name("inject.py"))


def _env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    if PREFECT_API_URL.value():
        env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())  # the session's test server
    env["PYTHONPATH"] = str(ROOT)
    env["PREFECT_LOGGING_LEVEL"] = "WARNING"  # the CLI's default (a test may have set INFO)
    return env


def _cli(*args: str, inject: tuple[str, Path] | None = None) -> subprocess.CompletedProcess:
    """`textdistill ARGS` in a subprocess; with `inject=(mode, folder)` a fault under folder."""
    head = [sys.executable, INJECT, inject[0], str(inject[1])] if inject else [
        sys.executable, "-m", "flows.cli"]
    return subprocess.run([*head, *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=300)


def _small(slice_dir: Path, runs: Path, *extra: str) -> list[str]:
    # An explicit precision: `auto` is resolved in process but recorded as `auto` on Ray, so
    # only then is a finished local run the same signals stage on Ray too. kmeans, not the
    # quickstart's `auto`: these runs test the error paths around the stages, and auto's
    # cross-validation doubled each run's time (auto's own runs: tests/synthesize/test_auto.py,
    # tests/cli/test_cached_rerun.py).
    return ["run", QUICKSTART, "--data-dir", str(slice_dir), "--runs-dir", str(runs),
            "--set", "run.seeds=[0]", "--set", "synthesize.per_class=2",
            "--set", "signals.precision=fp32", "--set", "synthesize.method=kmeans", *extra]


def _one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2, one line on the terminal (on stderr, stdout empty) naming `words`, no
    traceback."""
    both = result.stdout + result.stderr
    assert result.returncode == 2, both
    assert "Traceback" not in result.stdout and "Traceback" not in result.stderr, both
    assert not result.stdout.strip(), both
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, both
    assert lines[0].startswith("error: "), both
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folder` with its mtime and size (a rewrite, a new or a
    removed file, a temporary folder made and deleted all change it)."""
    paths = [folder, *folder.rglob("*")]
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size if p.is_file() else 0)
            for p in paths}


@pytest.fixture(scope="module")
def finished(prefect_server, slice_dir: Path, tmp_path_factory) -> Path:
    """A runs folder holding one finished small run."""
    runs = tmp_path_factory.mktemp("finished") / "runs"
    result = _cli(*_small(slice_dir, runs))
    assert result.returncode == 0, result.stdout + result.stderr
    return runs


def _run_folder(runs: Path) -> Path:
    (folder,) = [p for p in runs.iterdir() if not p.name.startswith(".")]
    return folder


# -- 1. data errors inside the flow: Prefect's failure logs stay off the terminal -----------

def test_data_error_inside_the_flow_is_one_line_and_reaches_the_server(
        prefect_server, tmp_path: Path) -> None:
    empty = tmp_path / "no-data-here"
    empty.mkdir()
    result = _cli("run", QUICKSTART, "--data-dir", str(empty), "--runs-dir",
                  str(tmp_path / "runs"))
    _one_line_error(result, f"{empty}/sst2_glue/train.tsv: file not found")
    # ... while the Prefect server keeps the whole failure, traceback included
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        # the server is shared with the other test worker: its runs may be newer
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=200)
        failed = [r for r in runs if r.state is not None and r.state.is_failed()
                  and str(empty) in (r.state.message or "")]
        assert failed
        logs = client.read_logs(log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[failed[0].id])))
    assert any("Traceback" in log.message and "IngestError" in log.message for log in logs)


def test_debug_shows_the_traceback_of_an_expected_error(prefect_server, tmp_path: Path) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    result = _cli("run", QUICKSTART, "--data-dir", str(empty), "--runs-dir",
                  str(tmp_path / "runs"), "--debug")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" in result.stderr and "IngestError" in result.stderr
    assert "error: " in result.stderr and "file not found" in result.stderr


def test_a_bug_keeps_its_traceback(prefect_server, slice_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    result = _cli(*_small(slice_dir, runs), inject=("bug", runs))
    assert result.returncode not in (0, 2), result.stdout + result.stderr
    assert "Traceback" in result.stdout + result.stderr
    assert "RuntimeError: injected bug" in result.stdout + result.stderr


@pytest.mark.slow
def test_a_cached_decoder_whose_tokenizer_garbles_text_is_one_line(
        finished: Path, slice_dir: Path, tmp_path: Path) -> None:
    """A cached SmolLM2 copy whose tokenizer lost its byte-level decoder (what another
    transformers release's save and reload can do): the generate stage refuses it in one line
    naming the folder, before the model writes a word. (In a copy of a finished run's folder:
    the corpus and its signals come from its stage caches, so only the decoder loads.)"""
    from distill_core.generate.models import resolve_causal_lm

    good = Path(resolve_causal_lm("smollm2"))
    bad = tmp_path / "cache" / "models" / good.name
    bad.mkdir(parents=True)
    for file in good.iterdir():
        if file.name != "tokenizer.json":
            (bad / file.name).symlink_to(file)
    spec = json.loads((good / "tokenizer.json").read_text(encoding="utf-8"))
    spec["decoder"] = None
    (bad / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    # Sealed as that release would have sealed it: the copy is intact as written, and only
    # this release's reload garbles it.
    from distill_core.artifacts.sealed import SEAL, seal

    (bad / SEAL).unlink()
    seal(bad, json.loads((good / SEAL).read_text(encoding="utf-8"))["identity"])
    runs = tmp_path / "runs"
    shutil.copytree(finished, runs)
    args = _small(slice_dir, runs, "--set", "synthesize.method=llm_synth")
    result = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT,
                            env=_env() | {"TEXTDISTILL_CACHE": str(tmp_path / "cache")},
                            capture_output=True, text=True, timeout=300)
    _one_line_error(result, f"the tokenizer from {bad} does not reproduce text",
                    "delete that folder")


# -- 2. the file system: disk full, read-only, permission denied, a file as --runs-dir -------

def test_disk_full_is_one_line(prefect_server, slice_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    line = _one_line_error(_cli(*_small(slice_dir, runs), inject=("enospc", runs)),
                           "no space left on the disk holding", str(runs), "--runs-dir",
                           "free some space")
    assert "finished stages are kept" in line


@pytest.mark.parametrize(("mode", "words"), [
    ("erofs", ("its file system is read-only", "--runs-dir DIR")),
    ("eacces", ("permission denied on", "access", "--runs-dir DIR")),
])
def test_unwritable_runs_folder_is_one_line(prefect_server, slice_dir: Path, tmp_path: Path,
                                            mode: str, words: tuple[str, ...]) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()  # it exists (a mounted read-only volume): the first write fails
    _one_line_error(_cli(*_small(slice_dir, runs), inject=(mode, runs)), str(runs), *words)
    assert not any(runs.iterdir())


def test_runs_dir_that_is_a_file_is_one_line(tmp_path: Path, slice_dir: Path) -> None:
    runs = tmp_path / "runs.txt"
    runs.write_text("not a folder")
    _one_line_error(_cli(*_small(slice_dir, runs)), f"--runs-dir {runs} is a file, not a "
                    "folder", "pass a folder")
    _one_line_error(_cli(*_small(slice_dir, runs / "below")), "Not a directory", "--runs-dir")


def test_a_runs_folder_that_cannot_be_made_is_one_line(tmp_path: Path, slice_dir: Path) -> None:
    _one_line_error(_cli(*_small(slice_dir, Path("/proc/textdistill-runs"))),
                    "cannot create the runs folder /proc/textdistill-runs", "--runs-dir")


def test_a_prefect_server_that_does_not_answer_is_one_line(tmp_path: Path,
                                                           slice_dir: Path) -> None:
    env = {**_env(), "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # nothing listens there
    result = subprocess.run([sys.executable, "-m", "flows.cli",
                             *_small(slice_dir, tmp_path / "runs")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    _one_line_error(result, "the Prefect server at http://127.0.0.1:9/api", "PREFECT_API_URL")


def test_a_model_folder_that_holds_no_model_is_one_line(prefect_server, tmp_path: Path,
                                                        slice_dir: Path) -> None:
    empty = tmp_path / "my-model"
    empty.mkdir()
    runs = tmp_path / "runs"
    result = _cli(*_small(slice_dir, runs, "--set", f"signals.model={empty}"))
    _one_line_error(result, f"{empty}: not a loadable model folder", "no config.json",
                    "save_pretrained")
    missing = tmp_path / "no-such-model"
    result = _cli(*_small(slice_dir, runs, "--set", f"signals.model={missing}"))
    _one_line_error(result, f"model folder {missing} not found")
    static = _cli(*_small(slice_dir, runs, "--set", f"signals.model=static:{empty}"))
    _one_line_error(static, f"{empty}: not a loadable model folder")
    # refused before any stage ran: no run folder was made
    assert not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".")]
    # a folder with a config.json but nothing loadable still fails at load, in one line
    (empty / "config.json").write_text("{}", encoding="utf-8")
    late = _cli(*_small(slice_dir, runs, "--set", f"signals.model={empty}"))
    _one_line_error(late, f"{empty}: not a loadable model folder", "save_pretrained")


# -- 2, 3, 7. config errors found at load ----------------------------------------------------

@pytest.mark.parametrize(("override", "words"), [
    ("run.name=" + "n" * 250, ("run.name has 250 characters", "at most 100")),
    ("run.seeds=[-1]", ("run.seeds", "from 0 to 4294967295", "got -1")),
    ("signals.max_length=100000", ("signals.max_length", "8192")),
    ("evaluate.baselines=[]", ("evaluate.baselines", "at least 1")),
])
def test_config_values_are_checked_at_load(slice_dir: Path, tmp_path: Path, override: str,
                                           words: tuple[str, ...]) -> None:
    _one_line_error(_cli(*_small(slice_dir, tmp_path / "runs", "--set", override)),
                    "invalid configuration", *words)
    assert not (tmp_path / "runs").exists()  # stopped before anything was made


def test_max_length_beyond_the_encoder_stops_before_any_stage(
        prefect_server, slice_dir: Path, tmp_path: Path) -> None:
    result = _cli(*_small(slice_dir, tmp_path / "runs", "--set", "signals.max_length=1000"))
    _one_line_error(result, "signals.max_length=1000", "'all-MiniLM-L6-v2'", "512 tokens",
                    "at most 512")
    assert not list((tmp_path / "runs").iterdir())


def test_config_file_not_utf8_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "latin1.yaml"
    config.write_bytes("run:\n  name: caf\u00e9\n".encode("latin-1"))
    _one_line_error(_cli("run", str(config), "--runs-dir", str(tmp_path / "runs")),
                    str(config), "not UTF-8", "save the config as UTF-8")


def test_duplicate_keys_are_one_line_naming_key_and_line(tmp_path: Path) -> None:
    config = tmp_path / "twice.yaml"
    config.write_text("synthesize:\n  method: random\nrun:\n  name: a\nsynthesize:\n"
                      "  per_class: 3\n")
    for command in ("run", "plan", "validate"):
        _one_line_error(_cli(command, str(config)), str(config), "line 5",
                        "duplicate key 'synthesize'", "first given at line 1")
    bench = tmp_path / "bench.yaml"
    bench.write_text("name: b\ndatasets: [sst2]\ndatasets: [mrpc]\n")
    _one_line_error(_cli("bench", str(bench)), "line 3", "duplicate key 'datasets'")


def test_serve_config_duplicate_keys_are_an_error(prefect_server, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")  # serve sets INFO; restored after
    config = tmp_path / "serve.yaml"
    config.write_text("runs_dir: runs\ndeployments: []\nruns_dir: other\n")
    result = CliRunner().invoke(_app(), ["serve", str(config)])
    assert result.exit_code == 2, result.output
    assert "line 3" in result.output and "duplicate key 'runs_dir'" in result.output


# -- 2. a damaged manifest -------------------------------------------------------------------

def test_manifest_that_is_not_json_is_one_line(finished: Path, slice_dir: Path,
                                               tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(finished, runs)
    stage = _run_folder(runs) / "signals"
    (stage / "manifest.json").write_text('{"stage": "signals", trunc')
    line = _one_line_error(_cli(*_small(slice_dir, runs)), f"{stage}/manifest.json",
                           f"delete the folder {stage}")
    assert "JSON" in line or "manifest" in line
    for command in (["audit", str(stage.parent)], ["report", str(stage.parent)]):
        result = CliRunner().invoke(_app(), command)
        assert result.exit_code == 2 and f"delete the folder {stage}" in result.output


def _app():
    from flows.cli import app

    return app


# -- 4. no retries for what a retry cannot fix -----------------------------------------------

def test_retry_only_what_a_retry_can_fix(prefect_server) -> None:
    from prefect import flow, task

    from distill_core.errors import ConfigError, IngestError
    from tasks.stages import retry_transient

    calls: list[str] = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_transient)
    def failing(kind: str) -> None:
        calls.append(kind)
        raise {"config": ConfigError("bad key"), "data": IngestError("bad file"),
               "value": ValueError("bad value"),
               "disk": OSError(errno.ENOSPC, "No space left on device"),
               "network": ConnectionError("worker gone"),
               "other": RuntimeError("flaky")}[kind]

    @flow
    def attempts(kind: str) -> None:
        failing(kind)

    for kind in ("config", "data", "value", "disk", "network", "other"):
        with pytest.raises(Exception):  # noqa: B017 - each raises its own
            attempts(kind)
    assert {k: calls.count(k) for k in dict.fromkeys(calls)} == {
        "config": 1, "data": 1, "value": 1, "disk": 1, "network": 3, "other": 3}


def test_a_stage_that_retries_fails_at_once_on_a_user_error(prefect_server, slice_dir: Path,
                                                            tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from distill_core.config import load_config
    from distill_core.pipeline.order import stage_named
    from flows.distill import distill

    assert stage_named("signals").retries == 2
    missing = tmp_path / "no-such-model"  # offline: a model that cannot be loaded
    cfg = load_config(QUICKSTART, [f"data.data_dir={slice_dir}", "run.seeds=[0]",
                                   "synthesize.per_class=2", f"signals.model={missing}"])
    state = distill(cfg.model_dump(mode="json"), str(tmp_path / "runs"), return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        only = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        signals = [t for t in client.read_task_runs(flow_run_filter=only)
                   if t.name == "signals"]
    assert len(signals) == 1 and signals[0].state.is_failed()
    assert signals[0].run_count == 1  # not retried


# -- 5. a finished run in a read-only folder is read, not written ----------------------------

def test_rerun_of_a_finished_run_writes_nothing(finished: Path, slice_dir: Path) -> None:
    before = _snapshot(finished)
    # where the work runs is not part of the run id: the same run, on Ray this time
    result = _cli(*_small(slice_dir, finished, "--set", "compute.backend=ray"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Scores on the evaluation split" in result.stdout
    assert _snapshot(finished) == before
    # ... and the output says nothing was computed, without starting Ray to find out
    assert (f"all 6 stages reused from {_run_folder(finished)}; nothing was computed (Ray "
            "was not contacted)") in result.stdout.splitlines()
    assert NO_FLOW_RUN not in result.stdout  # a Prefect server is configured: the flow ran


def test_finished_run_in_a_read_only_folder_prints_its_scores(finished: Path,
                                                              slice_dir: Path) -> None:
    before = _snapshot(finished)
    result = _cli(*_small(slice_dir, finished), inject=("erofs", finished))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Scores on the evaluation split" in result.stdout and "kmeans" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert _snapshot(finished) == before
    # the commands that only read work there too
    folder = str(_run_folder(finished))
    for command in (["report", folder], ["audit", folder]):
        assert _cli(*command, inject=("erofs", finished)).returncode == 0
    assert _snapshot(finished) == before


# -- 6. --debug on every command that reads a config or a run folder --------------------------

@pytest.mark.parametrize("command", [
    ["plan", "{missing}"], ["validate", "{missing}"], ["bench", "{missing}"],
    ["audit", "{tmp}"], ["report", "{tmp}/no-run"], ["run", "{missing}"],
])
def test_debug_flag_shows_the_traceback(command: list[str], tmp_path: Path) -> None:
    args = [a.format(missing=tmp_path / "missing.yaml", tmp=tmp_path) for a in command]
    plain = CliRunner().invoke(_app(), args)
    assert plain.exit_code == 2 and "Traceback" not in plain.output, plain.output
    assert len(plain.output.strip().splitlines()) == 1
    debug = CliRunner().invoke(_app(), [*args, "--debug"])
    assert debug.exit_code == 2
    assert "Traceback" in debug.stderr and debug.stderr.splitlines()[-1].startswith("error: ")
    assert not debug.stdout.strip()


# -- the mapping itself ------------------------------------------------------------------------

def test_user_error_maps_what_no_code_change_fixes(tmp_path: Path) -> None:
    from distill_core.errors import ArtifactError, StorageError, user_error

    full = user_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert isinstance(full, StorageError) and str(tmp_path) in str(full)
    denied = user_error(PermissionError(errno.EACCES, "Permission denied", "/x/y"))
    assert isinstance(denied, StorageError) and "/x/y" in str(denied)
    assert user_error(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None
    assert user_error(RuntimeError("bug")) is None and user_error(KeyError("k")) is None
    damaged = tmp_path / "summary.json"
    damaged.write_text("{not json")
    error = _mapped(lambda: json.loads(damaged.read_text()))
    assert isinstance(error, ArtifactError) and str(damaged) in str(error)
    assert "delete or restore it" in str(error)
    assert _mapped(lambda: json.loads("{not json")) is None  # no file involved: a bug


def _mapped(action):
    from distill_core.errors import user_error

    try:
        action()
    except ValueError as exc:
        return user_error(exc)
    raise AssertionError("no error")


# -- issue 18: every config problem names its origin; data files; the version -----------------

@pytest.mark.parametrize(("args", "words"), [
    (["validate", "--set", "data.dataset=sst3"],
     ("data.dataset (--set data.dataset=sst3): unknown dataset 'sst3'; did you mean 'sst2'? "
      "registered datasets: ag_news, mrpc",)),
    (["validate", "--set", "synthesize.labels.learn=true", "--set", "filter.corpus=false"],
     ("(--set synthesize.labels.learn=true, --set filter.corpus=false): "
      "synthesize.labels.learn with filter.corpus: false", "set filter.corpus: true")),
    (["plan", "--set", "synthesize.kmeans.n_iit=3"],
     ("unknown key synthesize.kmeans.n_iit (--set synthesize.kmeans.n_iit=3); did you mean "
      "synthesize.kmeans.n_init?",)),
])
def test_config_errors_name_the_set_that_gave_the_value(args: list[str],
                                                        words: tuple[str, ...]) -> None:
    if args[0] == "plan":
        args = [args[0], QUICKSTART, *args[1:]]
    line = _one_line_error(_cli(*args), *words)
    assert "defaults" not in line and QUICKSTART not in line


def test_plan_fails_on_a_column_the_header_lacks_as_the_run_would(tmp_path: Path) -> None:
    """`plan` computes nothing, but what fails a run's ingest as a whole fails it too."""
    train = tmp_path / "train.csv"
    train.write_text("sentence_x,label\na fine film,1\na dull film,0\n")
    config = tmp_path / "cfg.yaml"
    source = "{{file: {{path: {path}, text: sentence, label: label}}}}"
    config.write_text(f"data:\n  train: {source.format(path=train)}\n"
                      f"  eval: {source.format(path=train)}\n")
    _one_line_error(_cli("plan", str(config), "--runs-dir", str(tmp_path / "runs")),
                    f"{train}: required column 'sentence' not found; columns are "
                    "['sentence_x', 'label']")
    train.write_text("sentence,label\na fine film,1\na dull film,0\n")  # fixed: it plans
    result = _cli("plan", str(config), "--runs-dir", str(tmp_path / "runs"), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["stages"][0]["status"] == "compute"
    assert not (tmp_path / "runs").exists()


def test_unknown_keys_name_the_file_and_the_closest_key(tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text("data:\n  datset: sst2\n")
    for command in ("run", "validate"):
        line = _one_line_error(_cli(command, str(config), "--runs-dir", str(tmp_path / "r"))
                               if command == "run" else _cli(command, str(config)))
        assert line == (f"error: invalid configuration: unknown key data.datset (in {config}); "
                        "did you mean data.dataset?")
    assert not (tmp_path / "r").exists()
    bench = tmp_path / "bench.yaml"
    bench.write_text("datasets: [sst2]\nrun:\n  synthesize: {kmeans: {n_iit: 2}}\n")
    _one_line_error(_cli("bench", str(bench), "--runs-dir", str(tmp_path / "r")),
                    f"unknown key run.synthesize.kmeans.n_iit (in {bench}); did you mean "
                    "run.synthesize.kmeans.n_init?")


@pytest.mark.parametrize("kind", ["binary", "folder", "missing"])  # not UTF-8: above
def test_a_config_that_is_no_yaml_text_file_is_one_line(tmp_path: Path, kind: str) -> None:
    path = {"folder": tmp_path / "configs.yaml", "missing": tmp_path / "none.yaml"}.get(
        kind, tmp_path / "c.yaml")
    if kind == "binary":
        path.write_bytes(b"\x00\x01\x02run: {}\n")
    elif kind == "folder":
        path.mkdir()
    words = {"binary": "a binary file (NUL bytes at offset 0), not a YAML config",
             "folder": "is a folder, not a config file: pass the YAML file",
             "missing": "config file not found"}[kind]
    _one_line_error(_cli("validate", str(path)), f"{path}: {words}")


def _long_folder(tmp_path: Path) -> Path:
    """A folder whose path is well over 80 characters (a terminal's default width)."""
    folder = tmp_path / ("a-folder-with-a-long-name-" * 3) / "and-another-level-below-it"
    folder.mkdir(parents=True)
    assert len(str(folder)) > 100
    return folder


def _table_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line[:1] in "┏┃┡│└"]


def test_validate_checks_one_data_file_with_guessed_columns(tmp_path: Path) -> None:
    data = _long_folder(tmp_path) / "train.tsv"
    data.write_text("sentence\tlabel\ngood film\t1\nbad film\t0\n\t1\nfine\t1\ndull\t0\n")
    result = _cli("validate", str(data), "--label-map", "0=negative,1=positive")
    both = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in both, both
    lines = result.stdout.splitlines()
    # piped output: whole lines, a long path never wrapped
    assert "columns guessed from the file: --text sentence --label label (pass them to choose " \
           "others)" in lines
    assert f"train: {data}: 5 rows, 4 usable, 1 rejected" in lines
    (row,) = [line for line in _table_lines(result.stdout) if "empty_text" in line]
    assert str(data) in row and "sentence" in row and " 4 " in row
    assert len({len(line) for line in _table_lines(result.stdout)}) == 1  # no wrapped cell
    assert lines[-1] == "labels: negative, positive"


@pytest.mark.parametrize(("rows", "why"), [
    ("sentence,label\n,1\n ,0\n", "no usable training rows (2 rejected: empty_text 2)"),
    ("sentence,label\nok film,1\n,0\ngood film,1\n",
     "every usable training row has the label '1'; distillation needs two classes or more"),
])
def test_validate_lists_every_reject_before_saying_a_run_could_not_use_the_file(
        tmp_path: Path, rows: str, why: str) -> None:
    data = tmp_path / "train.csv"
    data.write_text(rows)
    result = _cli("validate", str(data))
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"error: {data}: {why}"]
    rejected = [line for line in _table_lines(result.stdout) if "empty_text" in line]
    assert len(rejected) == rows.count("\n,") + rows.count("\n ,")
    machine = _cli("validate", str(data), "--json")
    assert machine.returncode == 2
    assert json.loads(machine.stdout)["unusable"] == [f"{data}: {why}"]


def test_validate_of_a_config_with_one_training_class_lists_no_false_eval_rejects(
        tmp_path: Path) -> None:
    """Labels inferred from an unusable training split are no rule for the eval split: its
    two valid rows (labels 0 and 1) are not listed as unknown_label."""
    (tmp_path / "train.csv").write_text("sentence,label\nok film,1\n,0\ngood film,1\n")
    (tmp_path / "dev.csv").write_text("sentence,label\nbad film,0\nfine film,1\n,1\n")
    source = "{{file: {{path: {path}, text: sentence, label: label}}}}"
    config = tmp_path / "cfg.yaml"
    config.write_text(f"data:\n  dataset: null\n"
                      f"  train: {source.format(path=tmp_path / 'train.csv')}\n"
                      f"  eval: {source.format(path=tmp_path / 'dev.csv')}\n")
    result = _cli("validate", str(config), "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [(p["split"], p["source_row"], p["reason"]) for p in report["problems"]] == [
        ("train", 3, "empty_text"), ("eval", 4, "empty_text")]
    assert len(report["unusable"]) == 1 and "has the label '1'" in report["unusable"][0]


def test_validate_data_file_pairs_and_explicit_columns(slice_dir: Path, tmp_path: Path) -> None:
    mrpc = _cli("validate", str(slice_dir / "mrpc" / "train.tsv"), "--no-quoting", "--json")
    assert mrpc.returncode == 0, mrpc.stdout + mrpc.stderr
    payload = json.loads(mrpc.stdout)
    assert payload["guessed"] == ["--text #1 String", "--text-pair #2 String", "--label Quality"]
    assert payload["label_names"] == ["0", "1"] and payload["problems"] == []
    assert [s["split"] for s in payload["sources"]] == ["train"]
    jsonl = tmp_path / "tasks.jsonl.gz"
    import gzip

    with gzip.open(jsonl, "wt") as handle:
        handle.write('{"instruction": "add 1 and 2", "topic": "math"}\n'
                     '{"instruction": "name a colour", "topic": "words"}\n')
    _one_line_error(_cli("validate", str(jsonl)), f"{jsonl}: cannot tell which column holds "
                    "the text and which the label (columns found: 'instruction', 'topic'); "
                    "pass --text COLUMN and --label COLUMN")
    ok = _cli("validate", str(jsonl), "--text", "instruction", "--label", "topic")
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == "labels: math, words", ok.stdout
    _one_line_error(_cli("validate", QUICKSTART, "--text", "x"), "--text describe a data file")


def test_version_and_completion() -> None:
    from importlib.metadata import version

    result = _cli("--version")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == (f"textdistill {version('textdistill')} (torch {version('torch')}, "
                             f"prefect {version('prefect')}, ray {version('ray')}, python "
                             f"{sys.version.split()[0]})\n")
    bare = CliRunner().invoke(_app(), [])  # no arguments: still the help
    assert "Usage" in bare.output and "validate" in bare.output
    assert "--install-completion" in bare.output and "--show-completion" in bare.output


def test_piped_audit_keeps_long_lines_whole(finished: Path, tmp_path: Path) -> None:
    runs = _long_folder(tmp_path) / "runs"
    shutil.copytree(finished, runs)
    run_dir = _run_folder(runs)
    (part,) = (run_dir / "filter" / "data").glob("*.parquet")
    part.unlink()
    result = _cli("audit", str(run_dir))
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"run folder: {run_dir}" in lines
    assert (f"filter: part data/{part.name} is missing (rerun the run's command to "
            "recompute)") in lines
    assert len({len(line) for line in _table_lines(result.stdout)}) == 1


def test_a_manifest_without_its_records_is_one_line(finished: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(finished, runs)
    run_dir = _run_folder(runs)
    (run_dir / "filter" / "manifest.json").write_text("{}", encoding="utf-8")
    _one_line_error(_cli("audit", str(run_dir)), f"{run_dir / 'filter' / 'manifest.json'}",
                    "not a stage manifest", "delete the folder")
    manifest = json.loads((run_dir / "ingest" / "manifest.json").read_text(encoding="utf-8"))
    del manifest["counts"]
    (run_dir / "ingest" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    shutil.rmtree(run_dir / "filter")
    _one_line_error(_cli("report", str(run_dir)), "ingest/manifest.json: records no row counts")


def test_an_export_folder_that_cannot_be_made_is_one_line(finished: Path) -> None:
    _one_line_error(_cli("export", str(_run_folder(finished)), "/proc/textdistill-export"),
                    "cannot write the export folder /proc/textdistill-export")


def test_a_damaged_benchmark_folder_is_one_line(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench.json").write_text("{", encoding="utf-8")
    _one_line_error(_cli("report", str(bench)), f"{bench / 'bench.json'}: not valid JSON")
    (bench / "bench.json").write_text("{}", encoding="utf-8")
    _one_line_error(_cli("report", str(bench)), f"{bench / 'summary.json'}: missing")


def test_validate_reads_a_file_of_any_suffix_as_the_format_given(tmp_path: Path) -> None:
    data = tmp_path / "train.dat"
    data.write_text("sentence\tlabel\ngood film\t1\nbad film\t0\n\t1\n")
    result = _cli("validate", str(data), "--format", "tsv", "--text", "sentence",
                  "--label", "label")
    assert result.returncode == 1, result.stdout + result.stderr  # it lists one rejected row
    assert f"train: {data}: 3 rows, 2 usable, 1 rejected" in result.stdout.splitlines()
