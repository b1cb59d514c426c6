"""A real Prefect server (`prefect server start`, its own PREFECT_HOME, 127.0.0.1): a distill
run against it shows up with its name, tags, task runs, INFO logs and per-run artifacts (a
rerun's stages in the Cached state), and a served deployment with a cron schedule gets
scheduled runs and a typed parameter schema."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.servers.processes import free_port, start, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
# the quickstart method (auto) needs no teacher stage; its filters also run on the corpus
STAGE_TASKS = {"ingest", "signals", "clean", "synthesize", "filter", "evaluate", "report"}


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false", PREFECT_SERVER_API_HOST="127.0.0.1",
               PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS="2")
    log = home / "server.log"
    server = start([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                    "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for(lambda: urllib.request.urlopen(f"{url}/health", timeout=2).status == 200,
                 120, "Prefect server", log, server)
        yield url
    finally:
        stop(server)
    assert server.poll() is not None


def _client_env(url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=url, PREFECT_HOME=str(home), PYTHONPATH=str(ROOT),
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def _client(url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class Session:
        def __enter__(self):
            self._settings = temporary_settings(updates={PREFECT_API_URL: url})
            self._settings.__enter__()
            self._client = get_client(sync_client=True)
            return self._client.__enter__()

        def __exit__(self, *exc):
            self._client.__exit__(*exc)
            self._settings.__exit__(*exc)

    return Session()


def _distill_cli(prefect_api: str, slice_dir: Path, tmp_path: Path) -> str:
    """`textdistill run` of a small quickstart against the server, default verbosity; stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", str(ROOT / "configs" / "quickstart.yaml"),
         "--data-dir", str(slice_dir), "--runs-dir", str(tmp_path / "runs"),
         "--set", "run.seeds=[0,1]", "--set", "synthesize.per_class=4",
         "--set", "compute.cv_workers=1"],  # auto's folds in process (as in test_distill_flow)
        cwd=ROOT, env=_client_env(prefect_api, tmp_path / "home"), capture_output=True,
        text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def test_a_distill_run_is_recorded_with_task_runs_logs_and_artifacts(
        prefect_api: str, slice_dir: Path, tmp_path: Path) -> None:
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    stderr = _distill_cli(prefect_api, slice_dir, tmp_path)
    assert "stage ingest" not in stderr and "| INFO" not in stderr  # the terminal stays quiet
    with _client(prefect_api) as client:
        runs = [r for r in client.read_flow_runs() if r.name.endswith("(sst2 auto 4pc)")]
        assert len(runs) == 1 and runs[0].state.is_completed()
        flow_run = runs[0]
        run_id = flow_run.name.split(" ", 1)[0]  # the run folder's name: name and config hash
        assert (tmp_path / "runs" / run_id).is_dir() and run_id.startswith("quickstart-")
        assert {"dataset:sst2", "method:auto", "budget:4pc", f"run:{run_id}"} <= set(
            flow_run.tags)  # the CLI's run carries its tags to the server
        this_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        tasks = client.read_task_runs(flow_run_filter=this_run)
        assert {t.name.rsplit("-", 1)[0] for t in tasks} >= STAGE_TASKS
        assert all(t.state.is_completed() and t.state.name == "Completed" for t in tasks)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
        logs = client.read_logs(log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
    # the server has the INFO logs the terminal did not show: one line per stage
    stage_lines = [log.message for log in logs if log.level == logging.INFO
                   and log.message.startswith("stage ")]
    assert {line.split()[1] for line in stage_lines} >= STAGE_TASKS - {"report"}
    assert any(line.startswith("stage filter computed: rows in") and "rows out 16" in line
               for line in stage_lines), stage_lines
    slug = run_id.lower().replace("_", "-").replace(".", "-")
    keys = {a.key for a in artifacts}  # unique to the run: the run id comes first
    assert {f"{slug}-{s}-counts" for s in ("ingest", "signals", "synthesize", "filter")} <= keys
    counts = next(a for a in artifacts if a.key == f"{slug}-ingest-counts")
    assert counts.type == "table" and "rows rejected" in str(counts.data)
    assert "peak RSS (MiB)" in str(counts.data) and "wall time (s)" in str(counts.data)
    report = next(a for a in artifacts if a.key == f"{slug}-report")
    assert report.type == "markdown" and "auto (distilled)" in report.data
    assert f"# textdistill run `{run_id}`" in report.data and "## Funnel" in report.data

    # the same config again: every stage is found done in the run folder -> Cached task runs
    _distill_cli(prefect_api, slice_dir, tmp_path)
    with _client(prefect_api) as client:
        rerun = next(r for r in client.read_flow_runs()
                     if r.name == flow_run.name and r.id != flow_run.id)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[rerun.id])))
    states = {t.name.rsplit("-", 1)[0]: t.state for t in tasks}
    assert rerun.state.is_completed() and set(states) >= STAGE_TASKS
    assert all(states[s].is_completed() and states[s].name == "Cached"
               for s in STAGE_TASKS - {"report"}), {s: st.name for s, st in states.items()}


def test_served_deployment_gets_scheduled_runs(prefect_api: str, slice_dir: Path,
                                               tmp_path: Path) -> None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    serve_file = tmp_path / "serve.yaml"
    serve_file.write_text(yaml.safe_dump({"runs_dir": str(tmp_path / "runs"), "deployments": [{
        "name": "every-minute", "flow": "distill",
        "config": str(ROOT / "configs" / "quickstart.yaml"), "cron": "* * * * *",
        "set": [f"data.data_dir={slice_dir}", "run.seeds=[0]", "synthesize.per_class=3"]}]}))
    log = tmp_path / "serve.log"
    serving = start([sys.executable, "-m", "flows.cli", "serve", str(serve_file)],
                    _client_env(prefect_api, tmp_path / "home"), log)
    try:
        def scheduled() -> bool:
            with _client(prefect_api) as client:
                runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=["every-minute"])))
                return any(r.state.is_scheduled() for r in runs)

        wait_for(scheduled, 120, "a scheduled run of the served deployment", log, serving)
        with _client(prefect_api) as client:
            deployment = client.read_deployment_by_name("distill/every-minute")
            assert deployment.schedules[0].schedule.cron == "* * * * *"
            assert deployment.parameters["config"]["synthesize"]["per_class"] == 3
            schema = deployment.parameter_openapi_schema  # typed: one form field per setting
    finally:
        stop(serving)
    assert serving.poll() is not None
    config = schema["properties"]["config"]
    assert config["$ref"] == "#/definitions/RunConfig" and config["description"]
    fields = schema["definitions"]["RunConfig"]["properties"]
    assert {"run", "data", "synthesize", "evaluate", "compute"} <= set(fields)
    per_class = schema["definitions"]["SynthesizeSection"]["properties"]["per_class"]
    assert per_class["type"] == "integer" and per_class["description"]
    assert schema["properties"]["runs_dir"]["type"] == "string"
