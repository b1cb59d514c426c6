"""`textdistill serve`: the distill and benchmark flows as scheduled Prefect deployments.

A serve config lists deployments: which flow, which run or benchmark config
(resolved relative to the serve file, with `--set`-style overrides), a cron
schedule and its time zone. The configs are validated and frozen into each
deployment's parameters when serving starts, so what the Prefect UI shows is
exactly what each scheduled run will do; the flows' typed `config` parameter
(`RunConfig`, `BenchConfig`) gives the UI's run form one field per setting.
`flow.serve` semantics: this process polls the Prefect API and runs the
deployments' runs itself until stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distill_core.config import format_validation, load_config, read_yaml_file
from distill_core.errors import ConfigError


class DeploymentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    flow: Literal["distill", "benchmark"]
    config: str = Field(description="Run config (distill) or benchmark config (classification, "
                        "or instruction data with `task: instruction`), relative to "
                        "the serve file.")
    set: list[str] = Field(default_factory=list, description="Overrides, key=value.")
    cron: str = Field(description="Cron schedule, e.g. '0 2 * * *' (02:00 daily).")
    timezone: str = Field(default="UTC")
    tags: list[str] = Field(default_factory=list)

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, cron: str) -> str:
        if len(cron.split()) not in (5, 6):
            raise ValueError(f"{cron!r} is not a cron expression (5 fields)")
        return cron


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs_dir: str = Field(default="runs", description="Run folders; a path every worker "
                          "sees (a shared mount on a cluster).")
    deployments: list[DeploymentSpec] = Field(min_length=1)


def load_serve_config(path: str | Path) -> ServeConfig:
    file = Path(path)
    try:
        return ServeConfig.model_validate(read_yaml_file(file, "serve config"))
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, str(file))) from None


def deployment_parameters(spec: DeploymentSpec, base: Path, runs_dir: str) -> dict[str, Any]:
    """The validated config of one deployment, as the flow's parameters."""
    config_path = (base / spec.config).resolve()
    if spec.flow == "distill":
        config = load_config(config_path, spec.set).model_dump(mode="json")
    else:
        from distill_core.bench.config import load_bench_config
        from distill_core.bench.instruction import (
            is_instruction_bench,
            load_instruction_bench,
            read_bench_yaml,
        )

        if is_instruction_bench(data := read_bench_yaml(config_path)):
            config = load_instruction_bench(config_path, data, spec.set).model_dump(mode="json")
        else:
            config = load_bench_config(config_path, spec.set).model_dump(mode="json")
    runs = Path(runs_dir)
    return {"config": config, "runs_dir": str(runs if runs.is_absolute()
                                              else (base / runs).resolve())}


def build_deployments(path: str | Path) -> list[Any]:
    """RunnerDeployments for every entry of the serve config."""
    from prefect.schedules import Cron

    from flows.benchmark import benchmark
    from flows.distill import distill
    from flows.instruction_benchmark import instruction_benchmark

    file = Path(path)
    serve = load_serve_config(file)
    deployments = []
    for spec in serve.deployments:
        parameters = deployment_parameters(spec, file.parent, serve.runs_dir)
        flow = {"distill": distill, "benchmark": benchmark}[spec.flow]
        if spec.flow == "benchmark" and parameters["config"].get("task") == "instruction":
            flow = instruction_benchmark
        deployments.append(flow.to_deployment(
            name=spec.name, schedule=Cron(spec.cron, timezone=spec.timezone),
            parameters=parameters, tags=["textdistill", spec.flow, *spec.tags],
            description=f"{spec.flow} of {spec.config} on '{spec.cron}' ({spec.timezone})"))
    return deployments

