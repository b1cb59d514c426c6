"""Crashes and concurrency: a run killed with SIGKILL inside any stage resumes to the same
result with nothing lost or repeated; concurrent runs into one runs folder do not clobber."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from distill_core.artifacts.store import RunStore
from distill_core.audit import RunAudit

ROOT = Path(__file__).resolve().parent.parent
# herding with soft labels runs the teacher too: a kill point in every stage but the optional
# clean (the quickstart's filter.corpus, turned off here) and generate (covered by their own
# tests)
STAGES = ["ingest", "signals", "teacher", "synthesize", "filter", "evaluate"]


def _command(slice_dir: Path, runs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "run", str(ROOT / "configs" / "quickstart.yaml"),
            "--data-dir", str(slice_dir), "--runs-dir", str(runs),
            "--set", "run.seeds=[0,1]", "--set", "synthesize.per_class=4",
            "--set", "synthesize.soft_labels=true", "--set", "synthesize.method=herding",
            "--set", "filter.corpus=false", *extra]


def _env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())  # the session's test server
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=600)


def _only_run(runs: Path) -> RunStore:
    (folder,) = [p for p in runs.iterdir() if not p.name.startswith(".")]
    return RunStore.open(folder)


def _rows(store: RunStore, stage: str) -> list[tuple]:
    table = store.read(stage).drop_columns([c for c in ("run_id",) if c in
                                            store.read(stage).column_names])
    return sorted(tuple(str(v) for v in row.values()) for row in table.to_pylist())


def _scores(store: RunStore) -> list[tuple]:
    columns = ["setting", "replicate", "accuracy", "macro_f1"]
    return sorted(tuple(r.values()) for r in store.read("evaluate", columns=columns).to_pylist())


@pytest.fixture(scope="module")
def uninterrupted(prefect_server, slice_dir: Path, tmp_path_factory) -> RunStore:
    runs = tmp_path_factory.mktemp("runs-baseline")
    result = _run(_command(slice_dir, runs))
    assert result.returncode == 0, result.stdout + result.stderr
    return _only_run(runs)


def test_the_drill_config_runs_every_stage_it_kills_in() -> None:
    from distill_core.config import load_config
    from distill_core.pipeline.order import active_stages

    cfg = load_config(ROOT / "configs" / "quickstart.yaml",
                      ["synthesize.soft_labels=true", "synthesize.method=herding",
                       "filter.corpus=false"])
    assert [s.name for s in active_stages(cfg)] == STAGES


def test_sigkill_in_every_stage_in_turn_then_the_run_equals_an_uninterrupted_one(
        uninterrupted: RunStore, slice_dir: Path, tmp_path: Path) -> None:
    """One run folder, killed inside each stage in turn: every rerun publishes the stage the
    last one died in (its orphan gone, earlier stages skipped) and is killed in the next one;
    the last rerun finishes and equals an uninterrupted run. One process per kill, instead of a
    killed and a resumed process per stage."""
    finished: dict[str, str] = {}  # stage -> finished_at of what earlier processes published
    died_in: str | None = None
    for stage in [*STAGES, None]:
        extra = () if stage is None else ("--set", f"faults.kill_in_stage={stage}")
        result = _run(_command(slice_dir, tmp_path, *extra))
        expected = 0 if stage is None else -signal.SIGKILL
        assert result.returncode == expected, (stage, result.stdout + result.stderr)
        store = _only_run(tmp_path)
        # what earlier processes published was skipped, not computed again
        assert {s: store.manifest(s)["finished_at"] for s in finished} == finished, stage
        assert died_in is None or store.manifest(died_in) is not None, died_in  # resumed
        if stage is not None:
            assert store.manifest(stage) is None, stage  # the half-written stage: unpublished
        left = {p.name.split(".tmp-")[0].lstrip(".") for p in store.root.glob(".*.tmp-*")}
        assert left == ({stage} if stage else set()), (stage, left)  # earlier orphans cleaned
        done = STAGES if stage is None else STAGES[:STAGES.index(stage)]
        finished = {s: store.manifest(s)["finished_at"] for s in done}
        died_in = stage
    for name in ("ingest", "synthesize", "filter"):
        assert _rows(store, name) == _rows(uninterrupted, name)
    assert _scores(store) == _scores(uninterrupted)
    con = duckdb.connect()
    parts = [str(p) for p in store.parts("filter")]
    duplicated = con.execute("SELECT count(*) - count(DISTINCT (example_id, replicate)) "
                             "FROM read_parquet(?)", [parts]).fetchall()[0][0]
    assert duplicated == 0
    assert all(f["balanced"] for f in RunAudit(store.root).funnel())


def test_concurrent_runs_into_one_runs_folder(prefect_server, uninterrupted: RunStore,
                                              slice_dir: Path, tmp_path: Path) -> None:
    same = _command(slice_dir, tmp_path)
    other = _command(slice_dir, tmp_path, "--set", "synthesize.method=kmeans")  # last wins
    processes = [subprocess.Popen(c, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
                 for c in (same, same, other)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], "\n".join(outputs)
    folders = sorted(p for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert len(folders) == 2
    for folder in folders:
        assert all(f["balanced"] for f in RunAudit(folder).funnel())
        assert not list(folder.glob(".*"))  # no temporary or stale folders left
    herding = RunStore.open(next(f for f in folders
                                 if RunStore.open(f).read("filter")["method"][0].as_py()
                                 == "herding"))
    assert _rows(herding, "filter") == _rows(uninterrupted, "filter")
    # herding is deterministic: the report says the seeds' sets are one set; kmeans's differ
    kmeans = next(f for f in folders if f.name != herding.root.name)
    assert ("The 2 seeds distilled the same 8 rows (the method is deterministic"
            in (herding.root / "report.md").read_text())
    assert "seeds distilled the same" not in (kmeans / "report.md").read_text()
