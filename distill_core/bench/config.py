"""The benchmark configuration: which grid to run, with what learners, where.

Every (dataset, method, budget) group is an ordinary pipeline run (its
`RunConfig` is derived here), so selection, caching and lineage are the
pipeline's own. A dataset is a registered name, or the `data:` block a run
config takes (file sources, label names) with a `name`, handed to each of its
runs unchanged. A learner seed s trains on the distilled set of replicate
`seeds.index(s)`: five learner seeds give five distilled sets for stochastic
methods (the protocol asks for at least three) and five trainings of the one
set of deterministic methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distill_core.config import (
    ComputeSection,
    DataSection,
    RunConfig,
    SelectionMethod,
    apply_override,
    corpus_filtered_by_default,
    format_validation,
    read_yaml_file,
)
from distill_core.errors import ConfigError
from distill_core.hashing import stable_hash
from distill_core.learners import LearnerSpec
from distill_core.learners.registry import get_learner
from distill_core.methods import get_method, method_names

ALL_METHODS = method_names("selection")


class BenchFaults(BaseModel):
    """Fault injection for the resume tests; not part of the benchmark id."""

    model_config = ConfigDict(extra="forbid")
    kill_after_cells: int | None = Field(
        default=None, ge=1, description="SIGKILL this process after it has scored this many "
        "cells (each is already saved).")


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class BenchDataset(DataSection):
    """A benchmark dataset given as a run config's `data:` block (e.g. `train: {file: ...}`,
    `eval: {file: ...}`, `label_names`), with the name its cells, runs and reports use."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN, description="The dataset's "
                             "name in cells, run names and reports (default: `dataset`, "
                             "when no split source is given).")

    @model_validator(mode="after")
    def _named(self) -> BenchDataset:
        if self.name is None:
            if self.train is not None or self.eval is not None or self.dataset is None:
                raise ValueError("a dataset given by its `train`/`eval` sources needs a `name`")
            self.name = self.dataset
        return self

    def run_data(self, data_dir: str | None) -> dict[str, Any]:
        """The run config's `data` block: this one, less its name; its own `data_dir` wins."""
        block = self.model_dump(mode="json", exclude={"name"})
        block["data_dir"] = self.data_dir or data_dir
        return block


class BenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="bench", pattern=NAME_PATTERN)
    datasets: list[str | BenchDataset] = Field(
        default=["sst2"], min_length=1,
        description="Registered datasets (sst2, ag_news, mrpc, ...), or a run config's `data:` "
        "block with a `name` (`{name: mine, dataset: null, train: {file: {...}}, eval: {file: "
        "{...}}, label_names: [...]}`).")
    data_dir: str | None = Field(default=None, description="Local dataset folder (offline); "
                                 "default $TEXTDISTILL_DATA_DIR, else the hub.")
    budgets: list[int] = Field(default=[5, 10, 20], min_length=1, description="Data per class.")
    methods: list[SelectionMethod] = Field(default=list(ALL_METHODS), min_length=1)
    seeds: list[int] = Field(default=[0, 1, 2, 3, 4], min_length=1,
                             description="Learner seeds; one distilled set per seed.")
    soft_labels: bool = Field(default=False, description="Also train every learner on the "
                              "teacher's soft labels (distillation loss), reported apart. A "
                              "set that carries its own soft labels (learned: "
                              "`synthesize.labels`, a learned method) gets soft-label cells "
                              "whatever this says.")
    learners: list[LearnerSpec] = Field(default_factory=lambda: [
        LearnerSpec(kind="linear_probe")], min_length=1)
    run: dict[str, Any] = Field(default_factory=dict, description="RunConfig sections applied "
                                "to every run (signals, teacher, filter, synthesize options).")
    compute: ComputeSection = Field(default_factory=ComputeSection)
    faults: BenchFaults = Field(default_factory=BenchFaults)

    @field_validator("datasets")
    @classmethod
    def _registered(cls, datasets: list[str | BenchDataset]) -> list[str | BenchDataset]:
        from distill_core.ingest.registry import get_dataset

        for name in datasets:
            if not isinstance(name, str):
                continue  # a data block: checked as a run config's
            try:
                get_dataset(name)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        names = [d if isinstance(d, str) else d.name for d in datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names must be distinct: {names}")
        return datasets

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
        semantic = self.model_dump(mode="json", exclude={"compute", "faults", "data_dir"})
        for entry in semantic["datasets"]:
            if isinstance(entry, dict):
                entry.pop("data_dir", None)  # where the files sit, not what they hold
        return semantic

    def dataset_names(self) -> list[str]:
        """Each dataset's name, in order (a registered name, or a data block's `name`)."""
        return [d if isinstance(d, str) else str(d.name) for d in self.datasets]

    def data_block(self, dataset: str) -> dict[str, Any]:
        """The run config's `data` section for the dataset named `dataset`."""
        for entry in self.datasets:
            if isinstance(entry, str) and entry == dataset:
                return {"dataset": entry, "data_dir": self.data_dir}
            if isinstance(entry, BenchDataset) and entry.name == dataset:
                return entry.run_data(self.data_dir)
        raise KeyError(f"no dataset {dataset!r} in the benchmark: {self.dataset_names()}")

    def bench_id(self) -> str:
        return f"{self.name}-{stable_hash(self.semantic_dict())[:10]}"

    def learner_seeds(self, learner: LearnerSpec) -> list[int]:
        return learner.seeds or self.seeds

    def filters_corpus(self, dataset: str) -> bool:
        """`filter.corpus` for every cell when the benchmark leaves it unset: a run's default
        follows its method, and a grid draws every method's sets (and the baselines) from one
        pool, the clean corpus if any method's run would filter it."""
        base = validated_run({**self.run, "data": self.data_block(dataset)})
        return any(corpus_filtered_by_default(method, base.synthesize.labels.learn,
                                              base.synthesize.weights.learn, base.is_instruction)
                   for method in self.methods)

    def run_config(self, dataset: str, method: str, budget: int) -> RunConfig:
        """The pipeline run that produces the distilled sets of one grid group. The teacher's
        soft labels go to selection methods only: generated rows have none, and learned rows
        carry their own. `auto` is told the kinds of learners its set will train
        (`evaluate.learners`: it leaves out the recipes made for the linear probe alone
        when another learner trains too); with the probe alone that is the default, and the
        run id is as before."""
        soft_labels = self.soft_labels and get_method(method).takes_teacher_soft_labels
        data = {**self.run,
                "run": {"name": f"{self.name}-{dataset}-{method}-{budget}pc",
                        "seeds": self.seeds},
                "data": self.data_block(dataset),
                "synthesize": {**self.run.get("synthesize", {}), "method": method,
                               "per_class": budget, "soft_labels": soft_labels},
                "compute": self.compute.model_dump()}
        if get_method(method).family == "auto":
            kinds = [learner.kind for learner in self.learners
                     if not get_learner(learner.kind).synthetic_only]
            data["evaluate"] = {"learners": list(dict.fromkeys(kinds)) or ["linear_probe"]}
        if self.run.get("filter", {}).get("corpus") is None:
            data["filter"] = {**self.run.get("filter", {}), "corpus": self.filters_corpus(dataset)}
        return validated_run(data)


def validated_run(data: dict[str, Any]) -> RunConfig:
    """A benchmark group's run config, or one line saying what is wrong with it."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("benchmark run settings: " + format_validation(
            exc, None, model=RunConfig)) from None


def load_bench_config(path: str | Path, overrides: list[str] | None = None) -> BenchConfig:
    """Read a benchmark YAML, apply `a.b=value` overrides, validate."""
    file = Path(path)
    data = read_yaml_file(file, "benchmark config")
    for assignment in overrides or []:
        apply_override(data, assignment)
    try:
        cfg = BenchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, str(file), overrides, BenchConfig)) from None
    try:  # the `run` sections, checked at load like a run config's (unknown keys included)
        RunConfig.model_validate(cfg.run)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, str(file), overrides, RunConfig, ("run",))
                          ) from None
    return cfg
