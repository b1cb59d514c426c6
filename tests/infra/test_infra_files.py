"""The deployment files parse and carry the fields their tools require."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.serve import build_deployments, load_serve_config

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


def test_ray_cluster_launcher_config_has_a_gpu_worker_type() -> None:
    cluster = yaml.safe_load((INFRA / "ray" / "cluster.yaml").read_text())
    for key in ("cluster_name", "provider", "auth", "available_node_types", "head_node_type",
                "max_workers", "head_start_ray_commands", "worker_start_ray_commands"):
        assert key in cluster, key
    types = cluster["available_node_types"]
    assert cluster["head_node_type"] in types
    for spec in types.values():
        assert {"resources", "node_config", "min_workers", "max_workers"} <= set(spec)
    gpu = [name for name, spec in types.items() if spec["resources"].get("GPU", 0) >= 1]
    assert gpu and all(types[g]["max_workers"] <= cluster["max_workers"] for g in gpu)
    assert cluster["provider"]["type"] and cluster["auth"]["ssh_user"]
    assert any("ray start --head" in c for c in cluster["head_start_ray_commands"])
    assert any("--address" in c for c in cluster["worker_start_ray_commands"])


def test_kuberay_cluster_has_head_and_gpu_worker_group() -> None:
    documents = list(yaml.safe_load_all((INFRA / "k8s" / "raycluster.yaml").read_text()))
    ray_cluster = next(d for d in documents if d["kind"] == "RayCluster")
    assert ray_cluster["apiVersion"] == "ray.io/v1" and ray_cluster["metadata"]["name"]
    spec = ray_cluster["spec"]
    head = spec["headGroupSpec"]
    assert "rayStartParams" in head and head["template"]["spec"]["containers"][0]["image"]
    groups = spec["workerGroupSpecs"]
    assert groups and all({"groupName", "rayStartParams", "template"} <= set(g) for g in groups)
    assert all(g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] for g in groups)
    limits = groups[0]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1
    claim = next(d for d in documents if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # artifacts every node sees


def test_prefect_compose_runs_the_server_on_postgres() -> None:
    compose = yaml.safe_load((INFRA / "prefect" / "docker-compose.yaml").read_text())
    services = compose["services"]
    server, database = services["prefect-server"], services["postgres"]
    assert database["image"].startswith("postgres")
    assert server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith(
        "postgresql+asyncpg://")
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert all(port.startswith("127.0.0.1:") for port in server["ports"])


def test_prefect_yaml_entrypoints_exist_and_parameters_validate() -> None:
    from distill_core.bench.config import BenchConfig
    from distill_core.config import RunConfig

    project = yaml.safe_load((INFRA / "prefect" / "prefect.yaml").read_text())
    flows = {}
    for deployment in project["deployments"]:
        path, _, name = deployment["entrypoint"].partition(":")
        assert (ROOT / path).is_file() and f"def {name}(" in (ROOT / path).read_text()
        assert deployment["schedules"][0]["cron"] and deployment["work_pool"]["name"]
        flows[name] = deployment["parameters"]
    RunConfig.model_validate(flows["distill"]["config"])
    BenchConfig.model_validate(flows["benchmark"]["config"])
    # the prune deployment's parameters are the flow's own arguments, checked by its signature
    import inspect

    from distill_core.artifacts.cache_prune import parse_size
    from flows.cache_flow import cache_prune

    prune = flows["cache_prune"]
    assert set(prune) <= set(inspect.signature(cache_prune.fn).parameters)
    assert parse_size(prune["max_size"]) == 200 * 10**9 and prune["unused_days"] == 30


def test_serve_config_builds_both_deployments_with_their_schedules() -> None:
    serve = load_serve_config(ROOT / "configs" / "serve.yaml")
    deployments = build_deployments(ROOT / "configs" / "serve.yaml")
    assert [d.name for d in deployments] == [s.name for s in serve.deployments]
    assert {d.flow_name for d in deployments} == {"distill", "benchmark", "cache-prune"}
    for deployment, spec in zip(deployments, serve.deployments, strict=True):
        assert deployment.schedules[0].schedule.cron == spec.cron
        if spec.flow == "cache_prune":
            assert deployment.parameters == {
                "runs_dir": str((ROOT / "runs").resolve()), "unused_days": 30.0,
                "max_size": "200GB"}
        else:
            assert deployment.parameters["config"]  # validated and frozen at serve time


@pytest.mark.parametrize(("entry", "words"), [
    ("flow: cache_prune\n    config: quickstart.yaml\n", ("not config",)),
    ("flow: cache_prune\n", ("unused_days and/or max_size",)),
    ("flow: cache_prune\n    max_size: 12XB\n", ("12XB", "not a size")),
    ("flow: cache_prune\n    unused_days: -3\n", ("unused_days",)),
    ("flow: distill\n", ("needs a config",)),
    ("flow: distill\n    config: quickstart.yaml\n    unused_days: 3\n",
     ("cache_prune's",)),
])
def test_serve_entries_take_the_fields_of_their_flow(tmp_path: Path, entry: str,
                                                     words: tuple[str, ...]) -> None:
    from distill_core.errors import ConfigError

    (tmp_path / "serve.yaml").write_text(
        f"deployments:\n  - name: prune\n    {entry}    cron: '0 5 * * 0'\n",
        encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_serve_config(tmp_path / "serve.yaml")
    message = str(caught.value)
    assert str(tmp_path / "serve.yaml") in message
    for word in words:
        assert word in message, message


def test_serve_without_a_prefect_server_says_what_to_do(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "flows.cli", "serve",
                             str(ROOT / "configs" / "serve.yaml")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "PREFECT_API_URL" in result.stderr and "Traceback" not in result.stderr
    assert not result.stdout.strip()


def test_an_instruction_benchmark_is_served_by_its_own_flow(tmp_path: Path) -> None:
    import shutil

    shutil.copy(ROOT / "configs" / "bench-instruction-cpu.yaml", tmp_path / "ibench.yaml")
    (tmp_path / "serve.yaml").write_text(
        "runs_dir: runs\ndeployments:\n  - name: nightly-instruction\n    flow: benchmark\n"
        "    config: ibench.yaml\n    set: ['seeds=[0]']\n    cron: '0 3 * * *'\n",
        encoding="utf-8")
    [deployment] = build_deployments(tmp_path / "serve.yaml")
    assert deployment.flow_name == "instruction-benchmark"
    config = deployment.parameters["config"]
    assert config["task"] == "instruction" and config["seeds"] == [0]
