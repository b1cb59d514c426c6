"""A rerun with every stage done and no Prefect server configured is answered from the run
folder: no Prefect server started, nothing of torch, transformers, ray or prefect imported,
the same scores and reuse line, the report rebuilt only when missing or outdated. With a
Prefect server configured the flow runs as before (`test_errors.py` reruns a finished run
against the session's test server and checks the flow ran).

The finished run is built in process (the stages without Prefect: what the flow runs), then
`textdistill run` reruns it in a subprocess, under `python -X importtime` so the test sees
every module the command imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_core.artifacts.store import RunStore
from distill_core.config import load_config
from distill_core.signals.encoder import resolve_precision
from flows.cli_views import auto_choice_line
from flows.rerun import NO_FLOW_RUN, prefect_server_configured

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
# auto's folds in process: the suite's two xdist workers already keep both cores busy
SMALL = ["run.seeds=[0]", "synthesize.per_class=2", "compute.cv_workers=1"]
NOT_NEEDED = ("torch", "transformers", "ray", "prefect", "sklearn", "matplotlib")


@pytest.fixture(scope="module")
def finished(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory, run_stages) -> Path:
    """A runs folder holding the small quickstart run, every stage done, no report yet."""
    runs = tmp_path_factory.mktemp("cached-rerun") / "runs"
    cfg = load_config(QUICKSTART, [*SMALL, f"data.data_dir={slice_dir}"])
    run_stages(cfg, runs)
    return runs


def _rerun(runs: Path, slice_dir: Path, home: Path) -> tuple[subprocess.CompletedProcess,
                                                               set[str]]:
    """`textdistill run` of the small quickstart with no Prefect server configured and a fresh
    PREFECT_HOME; (result, top-level packages it imported)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(home), PYTHONPATH=str(ROOT))
    command = [sys.executable, "-X", "importtime", "-m", "flows.cli", "run", str(QUICKSTART),
               "--data-dir", str(slice_dir), "--runs-dir", str(runs)]
    for assignment in SMALL:
        command += ["--set", assignment]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in result.stderr.splitlines() if line.startswith("import time:")}
    return result, imported


def test_finished_run_is_answered_without_prefect_or_models(finished: Path, slice_dir: Path,
                                                            tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    result, imported = _rerun(finished, slice_dir, home)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    out = result.stdout
    [run_dir] = [p for p in finished.iterdir() if not p.name.startswith(".")]
    assert f"all 6 stages reused from {run_dir}; nothing was computed" in out
    assert "Scores on the evaluation split" in out and "auto (distilled)" in out
    block = RunStore.open(run_dir).manifest("synthesize")["auto"]
    assert f"\nauto chose {block['chosen']}" in out
    assert auto_choice_line(block) in out  # with the soft-label row named when it learned them
    assert "stage wall times: ingest resumed, signals resumed" in out
    assert NO_FLOW_RUN in out and f"report: {run_dir / 'report.md'}" in out
    assert not home.exists() or not any(home.iterdir())  # no Prefect database, no server
    assert not imported & {"torch", "transformers", "ray", "prefect"}, imported
    # The report was missing: built now. A second rerun finds it current and leaves it.
    report = run_dir / "report.md"
    assert report.is_file() and (run_dir / "report.html").is_file()
    written = report.stat().st_mtime_ns
    again, imported = _rerun(finished, slice_dir, home)
    assert again.returncode == 0 and NO_FLOW_RUN in again.stdout, again.stderr[-3000:]
    assert report.stat().st_mtime_ns == written
    assert not imported & set(NOT_NEEDED), imported  # no report rebuilt, nothing fitted


def test_signals_fingerprint_names_the_precision_that_ran(finished: Path) -> None:
    """`precision: auto` (the quickstart's) is resolved before the local run: the settings
    hashed into the fingerprint and the worker's own record agree."""
    [run_dir] = [p for p in finished.iterdir() if not p.name.startswith(".")]
    manifest = json.loads((run_dir / "signals" / "manifest.json").read_text())
    ran = resolve_precision("auto")  # on this machine's default device
    assert manifest["config"]["signals"]["precision"] == "auto"
    assert manifest["stage_config"]["precision"] == ran
    assert manifest["backend_timings"]["precision"] == {"local": ran}


def _profiles(tmp_path: Path, active: str) -> Path:
    path = tmp_path / "profiles.toml"
    path.write_text(f'active = "{active}"\n[profiles.remote]\n'
                    'PREFECT_API_URL = "http://127.0.0.1:4999/api"\n[profiles.plain]\n'
                    'PREFECT_LOGGING_LEVEL = "INFO"\n')
    return path


@pytest.mark.parametrize(("env", "active", "expected"), [
    ({}, "plain", False),                                    # a profile without a server
    ({}, "remote", True),                                    # the active profile names one
    ({"PREFECT_PROFILE": "remote"}, "plain", True),          # chosen by the environment
    ({"PREFECT_PROFILE": "local"}, "plain", False),          # not in the file: the default
    ({"PREFECT_PROFILES_PATH": "missing.toml"}, "remote", False),  # no file: the default
    ({"PREFECT_API_URL": "http://127.0.0.1:4998/api"}, "plain", True),
])
def test_server_configured_agrees_with_prefect(env: dict[str, str], active: str,
                                              expected: bool, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI tells whether a Prefect server is configured without importing Prefect; its
    answer is Prefect's own reading of the same environment and files."""
    from prefect.settings import Settings

    from flows.rerun import TEST_MODE

    monkeypatch.chdir(tmp_path)  # no .env, prefect.toml or pyproject.toml here
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE", *(f"PREFECT_{m}" for m in TEST_MODE)):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(_profiles(tmp_path, active)))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert prefect_server_configured() is expected
    assert bool(Settings().api.url) is expected  # Prefect's own reading of the same files
