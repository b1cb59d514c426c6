"""A Ray head and a second worker node (`ray start --head`, `ray start --address`, both on
127.0.0.1, token auth on): a run with `compute.backend: ray` at that address embeds on both
nodes, selects its seeds on both nodes, and its output is complete."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from distill_core.artifacts.store import RunStore
from distill_core.audit import RunAudit
from tests.servers.processes import free_port, start, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
SEEDS = [0, 1]  # one per node: synthesize spreads its seed tasks (SPREAD)


def _alive_nodes(address: str, env: dict[str, str]) -> list[str]:
    script = (f"import json, ray; ray.init(address={address!r}, log_to_driver=False); "
              "print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive']]))")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else []


@pytest.fixture(scope="module")
def ray_cluster():
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0"}
    address = f"127.0.0.1:{port}"
    head = start([RAY, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                  "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
                  "--temp-dir", temp_dir, "--disable-usage-stats"], env,
                 Path(temp_dir) / "head.log")
    worker = None
    try:
        wait_for(lambda: "Ray runtime started" in (Path(temp_dir) / "head.log").read_text(),
                 120, "Ray head", Path(temp_dir) / "head.log", head)
        worker = start([RAY, "start", "--block", "--address", address, "--node-ip-address",
                        "127.0.0.1", "--num-cpus", "2", "--disable-usage-stats"], env,
                       Path(temp_dir) / "worker.log")
        wait_for(lambda: "Ray runtime started" in (Path(temp_dir) / "worker.log").read_text()
                 and len(_alive_nodes(address, env)) == 2, 120, "Ray worker node",
                 Path(temp_dir) / "worker.log", worker)
        yield address, env, _alive_nodes(address, env)
    finally:
        if worker is not None:
            stop(worker, grace=5)
        stop(head, grace=5)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert head.poll() is not None


def test_a_ray_run_uses_both_nodes_and_is_complete(ray_cluster, slice_dir: Path,
                                                   tmp_path: Path, prefect_server,
                                                   encoder) -> None:
    import numpy as np
    from prefect.settings import PREFECT_API_URL

    from distill_core.signals.embeddings import matrix
    from distill_core.signals.encoder import resolve_precision

    address, env, nodes = ray_cluster
    assert len(nodes) == 2
    command = [sys.executable, "-m", "flows.cli", "run", str(ROOT / "configs" / "quickstart.yaml"),
               "--data-dir", str(slice_dir), "--runs-dir", str(tmp_path / "runs"),
               "--set", f"run.seeds={SEEDS}", "--set", "synthesize.per_class=4",
               "--set", "compute.backend=ray", "--set", f"compute.ray_address={address}",
               "--set", "compute.num_actors=2", "--set", "compute.cpus_per_actor=0.5",
               "--set", "signals.batch_size=16"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**env, "PYTHONPATH": str(ROOT),
                                 "PREFECT_API_URL": str(PREFECT_API_URL.value())})
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next(p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))
    store = RunStore.open(run_dir)
    prefixes = {n[:12] for n in nodes}
    signals = store.manifest("signals")
    assert signals["backend"] == "ray"
    embed_nodes = {w.split(":")[0] for w in signals["workers"]}
    assert embed_nodes == prefixes, signals["workers"]  # both nodes embedded
    assert sum(signals["workers"].values()) == len(set(
        store.read("ingest").column("text").to_pylist()))  # each distinct text once
    # `precision: auto` (the quickstart's) is resolved by each worker: the settings say
    # `auto`, the manifest what each worker ran (bf16 on a CPU with AMX) ...
    ran = resolve_precision("auto", "cpu")
    assert signals["stage_config"]["precision"] == "auto"
    assert signals["backend_timings"]["precision"] == dict.fromkeys(signals["workers"], ran)
    # ... and the vectors are the in-process encoder's (fp32), in the corpus's order
    got = matrix(store.read("signals"))
    want = encoder.encode(store.read("ingest").column("text").to_pylist())
    assert got.shape == want.shape
    assert np.min(np.sum(got * want, axis=1)) > (0.999 if ran == "bf16" else 0.9999)
    synthesize = store.manifest("synthesize")
    select_nodes = {w.split(":")[0] for w in synthesize["workers"].values()}
    assert select_nodes == prefixes, synthesize["workers"]  # seeds selected on both nodes
    assert sorted(synthesize["workers"]) == [str(s) for s in SEEDS]
    oversample = 3  # the default: each class is ranked to 3 x the budget, the filter cuts it
    assert store.read("synthesize").num_rows == len(SEEDS) * 4 * 2 * oversample
    assert store.read("filter").num_rows == len(SEEDS) * 4 * 2
    assert store.read("signals").num_rows == store.read("ingest").num_rows
    assert all(f["balanced"] for f in RunAudit(run_dir).funnel())


def test_benchmark_cells_score_on_the_cluster_like_in_process(
        ray_cluster, slice_dir: Path, tmp_path: Path, prefect_server) -> None:
    import pyarrow.parquet as pq
    import yaml
    from prefect.settings import PREFECT_API_URL

    from distill_core.bench.config import BenchConfig
    from flows.benchmark import benchmark

    address, env, _ = ray_cluster
    config = {"name": "on-ray", "datasets": ["mrpc"], "data_dir": str(slice_dir),
              "budgets": [2, 3], "methods": ["random", "herding"], "seeds": [0, 1],
              "learners": [{"kind": "linear_probe"}],
              # `precision: auto` is resolved on the driver for a local run and recorded as
              # `auto` for Ray workers, so the cells' keys match only with a pinned precision.
              "run": {"signals": {"precision": "fp32"}}}
    local = benchmark(config, str(tmp_path / "local"))
    config_file = tmp_path / "bench.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "bench", str(config_file), "--runs-dir",
         str(tmp_path / "ray"), "--set", "compute.backend=ray",
         "--set", f"compute.ray_address={address}", "--set", "compute.cpus_per_actor=0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**env, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value())})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "9 cells, 9 scored now" in " ".join(result.stdout.split())
    columns = ["key", "method", "per_class", "seed", "accuracy", "macro_f1"]
    on_ray = pq.read_table(tmp_path / "ray" / BenchConfig.model_validate(config).bench_id()
                           / "scores.parquet").select(columns)
    in_process = pq.read_table(Path(local["dir"]) / "scores.parquet").select(columns)
    assert on_ray.to_pylist() == in_process.to_pylist()
