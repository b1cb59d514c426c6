"""`textdistill run` and `audit` with the runs folder on a real S3 API (moto on 127.0.0.1):
the run writes every stage and its report there, `audit` reads the run in place through
pyarrow's filesystem, and an unreachable endpoint or a missing bucket is one line, exit 2.
Each command runs in a real subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.servers.processes import free_port
from tests.servers.s3 import S3Server

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
# kmeans, not the quickstart's auto: the object store is under test, and auto's
# cross-validation doubled the run's time.
SMALL = ["--set", "run.seeds=[0]", "--set", "synthesize.per_class=2",
         "--set", "signals.precision=fp32", "--set", "synthesize.method=kmeans"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    from prefect.settings import PREFECT_API_URL

    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "WARNING"}
    if PREFECT_API_URL.value():
        environment["PREFECT_API_URL"] = str(PREFECT_API_URL.value())  # the test server
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=300)


def _one_line(result: subprocess.CompletedProcess, *words: str) -> None:
    both = result.stdout + result.stderr
    lines = [line for line in both.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in both, both
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_a_run_on_s3_is_written_there_and_audited_in_place(
        s3: S3Server, prefect_server, slice_dir: Path, tmp_path: Path) -> None:
    bucket = s3.bucket()
    runs = f"s3://{bucket}/runs"
    result = _cli("run", QUICKSTART, "--data-dir", str(slice_dir), "--runs-dir", runs, *SMALL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [run_id] = {k.split("/")[1] for k in s3.keys(bucket, "runs/") if not k.startswith(
        "runs/.cache")}
    run_dir = f"{runs}/{run_id}"
    assert f"run folder: {run_dir}" in result.stdout.replace("\n", "")
    keys = s3.keys(bucket, f"runs/{run_id}/")
    for stage in ("ingest", "signals", "synthesize", "filter", "evaluate"):
        assert f"runs/{run_id}/{stage}/manifest.json" in keys
    assert {f"runs/{run_id}/report.md", f"runs/{run_id}/report.html"} <= set(keys)
    assert not (ROOT / "s3:").exists()  # nothing went to a local folder named like the URI

    audit = _cli("audit", run_dir, "--json")
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]
    payload = json.loads(audit.stdout)
    assert payload["run_dir"] == run_dir and payload["verified"] and payload["balanced"]
    funnel = {row["stage"]: row for row in payload["funnel"]}
    assert funnel["ingest"]["rows_out"] > 0 and funnel["filter"]["rows_out"] > 0
    # report and export read the run in place too (the URI is no local path).
    report = _cli("report", run_dir)
    assert report.returncode == 0 and "## Funnel" in report.stdout, report.stderr[-3000:]
    exported = _cli("export", run_dir, str(tmp_path / "export"))
    assert exported.returncode == 0, exported.stdout[-3000:] + exported.stderr[-3000:]
    assert (tmp_path / "export" / "README.md").is_file()
    assert not (ROOT / "s3:").exists()

    # A rerun with no Prefect server configured plans against S3, finds every stage done
    # (fingerprints match, parts verify) and answers from there: nothing computed, no flow.
    no_server = {"PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path / "prefect-home")}
    again = _cli("run", QUICKSTART, "--data-dir", str(slice_dir), "--runs-dir", runs, *SMALL,
                 env=no_server)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    out = " ".join(again.stdout.split())
    assert f"all 6 stages reused from {run_dir}; nothing was computed" in out
    assert "no Prefect flow run was recorded" in out


def test_a_missing_bucket_is_one_line(s3: S3Server) -> None:
    _one_line(_cli("audit", "s3://no-such-bucket-here/runs/r1"),
              "s3://no-such-bucket-here", "does not exist")


def test_an_unreachable_endpoint_is_one_line(s3: S3Server) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    _one_line(_cli("audit", "s3://bucket/runs/r1", env={"AWS_ENDPOINT_URL": endpoint}),
              "s3://bucket", "does not answer", "AWS_ENDPOINT_URL")
