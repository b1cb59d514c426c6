"""`textdistill serve`: the distill, benchmark and cache_prune flows as scheduled Prefect
deployments.

A serve config lists deployments: which flow, which run or benchmark config
(resolved relative to the serve file, with `--set`-style overrides), a cron
schedule and its time zone. The configs are validated and frozen into each
deployment's parameters when serving starts, so what the Prefect UI shows is
exactly what each scheduled run will do; the flows' typed `config` parameter
(`RunConfig`, `BenchConfig`) gives the UI's run form one field per setting.
`flow.serve` semantics: this process polls the Prefect API and runs the
deployments' runs itself until stopped. A `cache_prune` entry takes no config: its
`unused_days` / `max_size` prune the serve file's runs folder's cache on its schedule
(`flows/cache_flow.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from distill_core.artifacts.cache_prune import parse_size
from distill_core.config import format_validation, load_config, read_yaml_file
from distill_core.errors import ConfigError


class DeploymentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    flow: Literal["distill", "benchmark", "cache_prune"]
    config: str | None = Field(default=None, description="Run config (distill) or benchmark "
                               "config (classification, or instruction data with `task: "
                               "instruction`), relative to the serve file; none for "
                               "cache_prune.")
    set: list[str] = Field(default_factory=list, description="Overrides, key=value.")
    unused_days: float | None = Field(default=None, ge=0, description="cache_prune: remove "
                                      "entries no run wrote or reused for this many days.")
    max_size: str | None = Field(default=None, description="cache_prune: then remove the "
                                 "least recently used until the cache fits (e.g. 200GB).")
    cron: str = Field(description="Cron schedule, e.g. '0 2 * * *' (02:00 daily).")
    timezone: str = Field(default="UTC")
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fields_of_the_flow(self) -> DeploymentSpec:
        prune = self.flow == "cache_prune"
        if prune and (self.config is not None or self.set):
            raise ValueError(f"{self.name}: cache_prune takes unused_days and max_size, not "
                             "config or set")
        if prune and self.unused_days is None and self.max_size is None:
            raise ValueError(f"{self.name}: cache_prune needs unused_days and/or max_size")
        if prune:
            try:
                parse_size(self.max_size, "max_size")
            except ConfigError as exc:
                raise ValueError(f"{self.name}: {exc}") from None
        if not prune and self.config is None:
            raise ValueError(f"{self.name}: flow {self.flow} needs a config")
        if not prune and (self.unused_days is not None or self.max_size is not None):
            raise ValueError(f"{self.name}: unused_days and max_size are cache_prune's")
        return self

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
    runs = Path(runs_dir)
    runs_path = str(runs if runs.is_absolute() else (base / runs).resolve())
    if spec.flow == "cache_prune":
        return {"runs_dir": runs_path, "unused_days": spec.unused_days,
                "max_size": spec.max_size}
    assert spec.config is not None  # checked by the spec
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
    return {"config": config, "runs_dir": runs_path}


def build_deployments(path: str | Path) -> list[Any]:
    """RunnerDeployments for every entry of the serve config."""
    from prefect.schedules import Cron

    from flows.benchmark import benchmark
    from flows.cache_flow import cache_prune
    from flows.distill import distill
    from flows.instruction_benchmark import instruction_benchmark

    file = Path(path)
    serve = load_serve_config(file)
    deployments = []
    for spec in serve.deployments:
        parameters = deployment_parameters(spec, file.parent, serve.runs_dir)
        flow = {"distill": distill, "benchmark": benchmark, "cache_prune": cache_prune
                }[spec.flow]
        if spec.flow == "benchmark" and parameters["config"].get("task") == "instruction":
            flow = instruction_benchmark
        what = (f"the cache of {parameters['runs_dir']}" if spec.flow == "cache_prune"
                else spec.config)
        deployments.append(flow.to_deployment(
            name=spec.name, schedule=Cron(spec.cron, timezone=spec.timezone),
            parameters=parameters, tags=["textdistill", spec.flow, *spec.tags],
            description=f"{spec.flow} of {what} on '{spec.cron}' ({spec.timezone})"))
    return deployments

