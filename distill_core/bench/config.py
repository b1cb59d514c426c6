"""The benchmark configuration: which grid to run, with what learners, where.

Every (dataset, method, budget) group is an ordinary pipeline run (its
`RunConfig` is derived here), so selection, caching and lineage are the
pipeline's own. A learner seed s trains on the distilled set of replicate
`seeds.index(s)`: five learner seeds give five distilled sets for stochastic
methods (the protocol asks for at least three) and five trainings of the one
set of deterministic methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distill_core.config import (
    ComputeSection,
    RunConfig,
    SelectionMethod,
    apply_override,
    format_validation,
    read_yaml_file,
)
from distill_core.errors import ConfigError
from distill_core.hashing import stable_hash
from distill_core.learners import LearnerSpec
from distill_core.methods import method_names

ALL_METHODS = method_names("selection")


class BenchFaults(BaseModel):
    """Fault injection for the resume tests; not part of the benchmark id."""

    model_config = ConfigDict(extra="forbid")
    kill_after_cells: int | None = Field(
        default=None, ge=1, description="SIGKILL this process after it has scored this many "
        "cells (each is already saved).")


class BenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="bench", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    datasets: list[str] = Field(default=["sst2"], min_length=1,
                                description="Registered datasets (sst2, ag_news, mrpc, ...).")
    data_dir: str | None = Field(default=None, description="Local dataset folder (offline); "
                                 "default $TEXTDISTILL_DATA_DIR, else the hub.")
    budgets: list[int] = Field(default=[5, 10, 20], min_length=1, description="Data per class.")
    methods: list[SelectionMethod] = Field(default=list(ALL_METHODS), min_length=1)
    seeds: list[int] = Field(default=[0, 1, 2, 3, 4], min_length=1,
                             description="Learner seeds; one distilled set per seed.")
    soft_labels: bool = Field(default=False, description="Also train every learner on the "
                              "teacher's soft labels (distillation loss), reported apart.")
    learners: list[LearnerSpec] = Field(default_factory=lambda: [
        LearnerSpec(kind="linear_probe")], min_length=1)
    run: dict[str, Any] = Field(default_factory=dict, description="RunConfig sections applied "
                                "to every run (signals, teacher, filter, synthesize options).")
    compute: ComputeSection = Field(default_factory=ComputeSection)
    faults: BenchFaults = Field(default_factory=BenchFaults)

    @model_validator(mode="after")
    def _consistent(self) -> BenchConfig:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be distinct")
        labels = [learner.label() for learner in self.learners]
        if len(set(labels)) != len(labels):
            raise ValueError(f"learner names must be distinct: {labels}")
        for learner in self.learners:
            extra = set(learner.seeds or []) - set(self.seeds)
            if extra:
                raise ValueError(f"learner {learner.label()!r}: seeds {sorted(extra)} are not "
                                 f"among the benchmark's seeds {self.seeds}")
        for section in ("run", "data", "compute", "faults", "evaluate"):
            if section in self.run:
                raise ValueError(f"run.{section} is set by the benchmark; use the top-level "
                                 "fields instead")
        return self

    def semantic_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"compute", "faults", "data_dir"})

    def bench_id(self) -> str:
        return f"{self.name}-{stable_hash(self.semantic_dict())[:10]}"

    def learner_seeds(self, learner: LearnerSpec) -> list[int]:
        return learner.seeds or self.seeds

    def run_config(self, dataset: str, method: str, budget: int) -> RunConfig:
        """The pipeline run that produces the distilled sets of one grid group."""
        data = {**self.run,
                "run": {"name": f"{self.name}-{dataset}-{method}-{budget}pc",
                        "seeds": self.seeds},
                "data": {"dataset": dataset, "data_dir": self.data_dir},
                "synthesize": {**self.run.get("synthesize", {}), "method": method,
                               "per_class": budget, "soft_labels": self.soft_labels},
                "compute": self.compute.model_dump()}
        try:
            return RunConfig.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"benchmark run settings are invalid: {exc}") from None


def load_bench_config(path: str | Path, overrides: list[str] | None = None) -> BenchConfig:
    """Read a benchmark YAML, apply `a.b=value` overrides, validate."""
    file = Path(path)
    data = read_yaml_file(file, "benchmark config")
    for assignment in overrides or []:
        apply_override(data, assignment)
    try:
        return BenchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, str(file))) from None
