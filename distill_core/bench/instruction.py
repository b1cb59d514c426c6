"""The benchmark grid for instruction data: methods × budgets × seeds, scored by `sft_lora`.

Every (dataset, method, budget) group is an ordinary pipeline run through
`evaluate` (its `sft_lora` fits of the distilled sets, one per seed), so
caching, resume and lineage are the pipeline's own. Baselines are fitted once,
not once per method: `random` in the first method's run of each (dataset,
budget), `full` in the first run of each dataset. `summarize` turns the runs'
score tables into held-out loss mean ± std per cell and the share of the
random-to-full gap each method closes; `write_reports` draws held-out loss
against budget per dataset.
"""

from __future__ import annotations

import html
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distill_core.artifacts.manifest import package_versions
from distill_core.artifacts.store import RunStore
from distill_core.bench.config import NAME_PATTERN, validated_run
from distill_core.bench.report import _html_table, md_table, write_pages
from distill_core.config import (
    ComputeSection,
    RunConfig,
    apply_override,
    format_validation,
    read_yaml_file,
)
from distill_core.errors import ConfigError
from distill_core.hashing import stable_hash
from distill_core.pipeline.order import STAGE_NAMES

PRESETS = ("alpaca_subset", "gsm8k")


class InstructionDataset(BaseModel):
    """A dataset of the grid: a name and a run config's `data.instruction` block."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="The dataset's name in the report.")
    instruction: dict[str, Any] = Field(description="`data.instruction` of its runs: "
                                        "`{preset: gsm8k}` or a mapped file with its split.")
    budgets: list[float] | None = Field(default=None, min_length=1, description="This "
                                        "dataset's budgets (unset: the benchmark's).")
    run: dict[str, Any] = Field(default_factory=dict, description="RunConfig settings for "
                                "this dataset's runs, merged over the benchmark's `run` "
                                "(e.g. `instruct.sft.exact_match_rows` for GSM8K).")


class InstructionBenchConfig(BaseModel):
    """`textdistill bench` on instruction data (`task: instruction`)."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["instruction"]
    name: str = Field(default="bench-instruction", pattern=NAME_PATTERN)
    datasets: list[str | InstructionDataset] = Field(
        default=["alpaca_subset"], min_length=1,
        description="Presets (alpaca_subset, gsm8k) or `{name, instruction: {...}}` blocks.")
    data_dir: str | None = Field(default=None, description="Local dataset folder (offline); "
                                 "default $TEXTDISTILL_DATA_DIR.")
    budgets: list[float] = Field(default=[0.05], min_length=1, description="A fraction of "
                                 "the pool below 1, else a row count.")
    methods: list[str] = Field(default=["kmeans", "ifd"], min_length=1,
                               description="Instruction methods (kmeans, ifd, deita, less, "
                               "llm_synth, ...).")
    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    baselines: list[Literal["random", "full"]] = Field(default=["random", "full"])
    run: dict[str, Any] = Field(default_factory=dict, description="RunConfig sections applied "
                                "to every run (instruct, signals, filter, synthesize options).")
    compute: ComputeSection = Field(default_factory=ComputeSection)

    @model_validator(mode="after")
    def _consistent(self) -> InstructionBenchConfig:
        for settings in [self.run] + [d.run for d in self.datasets
                                      if isinstance(d, InstructionDataset)]:
            for section in ("run", "data", "compute", "evaluate"):
                if section in settings:
                    raise ValueError(f"run.{section} is set by the benchmark; use the "
                                     "top-level fields instead")
        for entry in self.datasets:
            if isinstance(entry, str) and entry not in PRESETS:
                raise ValueError(f"dataset {entry!r}: not an instruction preset {PRESETS}; "
                                 "give `{name: ..., instruction: {...}}` for a file")
        names = self.dataset_names()
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names must be distinct: {names}")
        for field in ("seeds", "budgets", "methods"):
            values = getattr(self, field)
            if len(set(values)) != len(values):
                raise ValueError(f"{field} must be distinct: {values}")
        return self

    def dataset_names(self) -> list[str]:
        return [d if isinstance(d, str) else d.name for d in self.datasets]

    def entry(self, dataset: str) -> InstructionDataset:
        """The dataset named `dataset` (a preset name stands for its default block)."""
        for entry in self.datasets:
            if isinstance(entry, str) and entry == dataset:
                return InstructionDataset(name=entry, instruction={"preset": entry})
            if isinstance(entry, InstructionDataset) and entry.name == dataset:
                return entry
        raise KeyError(f"no dataset {dataset!r} in the benchmark: {self.dataset_names()}")

    def budgets_of(self, dataset: str) -> list[float]:
        return self.entry(dataset).budgets or self.budgets

    def bench_id(self) -> str:
        semantic = self.model_dump(mode="json", exclude={"compute", "data_dir"})
        return f"{self.name}-{stable_hash(semantic)[:10]}"

    def run_config(self, dataset: str, method: str, budget: float,
                   baselines: list[str]) -> RunConfig:
        """The pipeline run of one group, fitting `baselines` beside its distilled sets."""
        label = budget_label(budget)
        entry = self.entry(dataset)
        settings = merged(self.run, entry.run)
        data = {**settings,
                "run": {"name": f"{self.name}-{dataset}-{method}-{label}", "seeds": self.seeds},
                "data": {"task": "instruction", "data_dir": self.data_dir,
                         "instruction": entry.instruction},
                "synthesize": {**settings.get("synthesize", {}), "method": method,
                               "budget": budget},
                "evaluate": {"baselines": baselines},
                "compute": self.compute.model_dump()}
        return validated_run(data)


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into `base`, key by key at every depth (a copy)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def budget_label(budget: float) -> str:
    """`0.05` for a fraction of the pool, `100` for a row count."""
    return f"{budget:g}" if budget < 1 else str(int(budget))


def is_instruction_bench(data: dict[str, Any]) -> bool:
    return data.get("task") == "instruction"


def load_instruction_bench(path: str | Path, data: dict[str, Any],
                           overrides: list[str] | None = None) -> InstructionBenchConfig:
    """Validate an instruction benchmark YAML (already read as `data`) after overrides; every
    group's run config is checked here, so a bad method or budget fails before any work."""
    for assignment in overrides or []:
        apply_override(data, assignment)
    try:
        cfg = InstructionBenchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, str(path), overrides,
                                            InstructionBenchConfig)) from None
    plan_groups(cfg, "runs")  # builds (so validates) every group's run config
    return cfg


def read_bench_yaml(path: str | Path) -> dict[str, Any]:
    return read_yaml_file(Path(path), "benchmark config")


@dataclass(frozen=True)
class Group:
    """One pipeline run of the grid, with the baselines it fits."""

    dataset: str
    method: str
    budget: float
    baselines: tuple[str, ...]
    config: RunConfig
    run_dir: str


def plan_groups(cfg: InstructionBenchConfig, runs_dir: str | Path) -> list[Group]:
    """dataset × budget × method; random fitted in each (dataset, budget)'s first run, full
    in each dataset's first run."""
    groups = []
    for dataset in cfg.dataset_names():
        full_done = False
        for budget in cfg.budgets_of(dataset):
            for index, method in enumerate(cfg.methods):
                baselines = []
                if "random" in cfg.baselines and index == 0:
                    baselines.append("random")
                if "full" in cfg.baselines and not full_done:
                    baselines.append("full")
                    full_done = True
                run = cfg.run_config(dataset, method, budget, baselines)
                groups.append(Group(dataset, method, budget, tuple(baselines), run,
                                    str(Path(runs_dir).resolve() / run.run_id())))
    return groups


def bench_dir(cfg: InstructionBenchConfig, runs_dir: str | Path) -> Path:
    return Path(runs_dir).resolve() / cfg.bench_id()


def collect(groups: list[Group]) -> list[dict[str, Any]]:
    """Every fit of every run, labelled with its dataset and budget (the evaluate scores)."""
    rows = []
    for group in groups:
        store = RunStore.open(group.run_dir)
        for record in store.read("evaluate").to_pylist():
            full = record["setting"] == "full"
            rows.append({"dataset": group.dataset,
                         "budget": "full" if full else budget_label(group.budget),
                         "method": record["method"], "seed": record["seed"],
                         "rows": record["rows"], "short": record["short"],
                         "eval_loss": record["eval_loss"],
                         "exact_match": record["exact_match"],
                         "wall_s": record["wall_s"], "worker": record.get("worker"),
                         "run_dir": group.run_dir})
    return rows


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (dataset, budget, method): held-out loss (and exact match) mean ± std over seeds,
    mean rows, and the share of the random-to-full gap closed (distilled methods)."""
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault((row["dataset"], row["budget"], row["method"]), []).append(row)
    full = {d: statistics.fmean(r["eval_loss"] for r in rs)
            for (d, _, m), rs in cells.items() if m == "full"}
    random = {(d, b): statistics.fmean(r["eval_loss"] for r in rs)
              for (d, b, m), rs in cells.items() if m == "random"}
    out = []
    for (dataset, budget, method), mine in cells.items():
        entry: dict[str, Any] = {
            "dataset": dataset, "budget": budget, "method": method,
            "rows": statistics.fmean(r["rows"] for r in mine),
            "short": max(r["short"] for r in mine),
            "eval_loss": _mean_std([r["eval_loss"] for r in mine])}
        matches = [r["exact_match"] for r in mine if r["exact_match"] is not None]
        if matches:
            entry["exact_match"] = _mean_std(matches)
        base = random.get((dataset, budget))
        if method not in ("random", "full") and base is not None and dataset in full \
                and base != full[dataset]:
            entry["gap_closed"] = (base - entry["eval_loss"]["mean"]) / (base - full[dataset])
        out.append(entry)
    return out


HEADER = ["budget", "method", "rows", "held-out loss / token", "exact match", "gap closed",
          "short"]


def dataset_table(summary: list[dict[str, Any]], dataset: str
                  ) -> tuple[list[list[str]], set[tuple[int, int]]]:
    """One dataset's rows (budgets in order, full last) and the best loss per budget."""
    mine = [e for e in summary if e["dataset"] == dataset]
    mine.sort(key=lambda e: (e["budget"] == "full", _budget_value(e["budget"])))
    rows, bold, best = [], set(), {}
    for e in mine:
        if e["budget"] != "full":
            best[e["budget"]] = min(best.get(e["budget"], float("inf")), e["eval_loss"]["mean"])
    for i, e in enumerate(mine):
        loss = e["eval_loss"]
        match = e.get("exact_match")
        rows.append([e["budget"], e["method"], f"{e['rows']:.0f}",
                     f"{loss['mean']:.4f} ± {loss['std']:.4f}",
                     f"{match['mean']:.3f} ± {match['std']:.3f}" if match else "-",
                     f"{100 * e['gap_closed']:+.0f} %" if "gap_closed" in e else "-",
                     str(e["short"])])
        if e["budget"] in best and loss["mean"] == best[e["budget"]]:
            bold.add((i, 3))
    return rows, bold


def _budget_value(label: str) -> float:
    return float("inf") if label == "full" else float(label)


def plot_dataset(summary: list[dict[str, Any]], dataset: str, path: Path) -> Path:
    """Held-out loss against training rows, one line per method, full data across."""
    from distill_core.report_plots import _pyplot

    plt = _pyplot()
    mine = [e for e in summary if e["dataset"] == dataset]
    figure, axis = plt.subplots(figsize=(6, 4), dpi=110)
    methods = list(dict.fromkeys(e["method"] for e in mine if e["method"] != "full"))
    for i, method in enumerate(methods):
        points = sorted((e["rows"], e["eval_loss"]["mean"], e["eval_loss"]["std"])
                        for e in mine if e["method"] == method)
        nudge = 1 + 0.03 * (i - (len(methods) - 1) / 2)  # side by side at one budget
        axis.errorbar([p[0] * nudge for p in points], [p[1] for p in points],
                      yerr=[p[2] for p in points], marker="o", capsize=3, label=method)
    for e in mine:
        if e["method"] == "full":
            axis.axhline(e["eval_loss"]["mean"], color="black", linestyle="--",
                         label=f"full ({e['rows']:.0f} rows)")
    axis.set_xscale("log")
    rows = [e["rows"] for e in mine]
    axis.set_xlim(min(rows) / 1.6, max(rows) * 1.6)  # a readable span even for one budget
    plain = plt.FuncFormatter(lambda x, _: f"{x:g}")
    axis.xaxis.set_major_formatter(plain)
    axis.xaxis.set_minor_formatter(plain)
    axis.set_xlabel("training rows (log)")
    axis.set_ylabel("held-out response loss / token")
    axis.set_title(f"{dataset}: held-out loss against budget", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})  # the same bytes for the same scores
    plt.close(figure)
    return path


def finalize(cfg: InstructionBenchConfig, out_dir: Path, groups: list[Group],
             computed: int, wall_time_s: float) -> dict[str, Any]:
    """fits.json (every fit), summary.json, bench.json and report.md/.html with one plot per
    dataset; returns the facts."""
    rows = collect(groups)
    summary = summarize(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fits.json").write_text(json.dumps(rows, indent=1))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    inputs = {}
    for group in groups:
        store = RunStore.open(group.run_dir)
        inputs[Path(group.run_dir).name] = {s: m["fingerprint"] for s in STAGE_NAMES
                                            if (m := store.manifest(s))}
    facts = {"bench_id": cfg.bench_id(), "task": "instruction",
             "config": cfg.model_dump(mode="json"), "seeds": cfg.seeds, "runs": len(groups),
             "runs_computed": computed, "fits": len(rows),
             "wall_time_s": round(wall_time_s, 1), "versions": package_versions(),
             "inputs": inputs}
    (out_dir / "bench.json").write_text(json.dumps(facts, indent=1))
    md, html_path = write_reports(out_dir, summary, facts)
    return {**facts, "report": str(md), "report_html": str(html_path), "dir": str(out_dir)}


def write_reports(out_dir: Path, summary: list[dict[str, Any]], facts: dict[str, Any]
                  ) -> tuple[Path, Path]:
    runs = facts["runs"]
    intro = (f"{runs} pipeline run{'s' * (runs != 1)} ({facts['runs_computed']} computed in this "
             f"invocation, the rest resumed), {facts['fits']} `sft_lora` fits; seeds "
             f"{facts['seeds']}. Held-out response loss per token on each dataset's evaluation "
             "split (lower is better), mean ± sample std over seeds; the best per budget in "
             "bold. Gap closed = (random − method) / (random − full). `short`: rows a set is "
             "below its budget after the filters.")
    md = [f"# Benchmark {facts['bench_id']}", "", intro, ""]
    parts = [f"<h1>Benchmark {html.escape(facts['bench_id'])}</h1>",
             f"<p>{html.escape(intro.replace('`', ''))}</p>"]
    for dataset in dict.fromkeys(e["dataset"] for e in summary):
        rows, bold = dataset_table(summary, dataset)
        png = plot_dataset(summary, dataset, out_dir / "plots" / f"{dataset}.png")
        rel = png.relative_to(out_dir).as_posix()
        md += [f"## {dataset}", "", md_table(HEADER, rows, bold), "", f"![{dataset}]({rel})", ""]
        parts += [f"<h2>{html.escape(dataset)}</h2>", _html_table(HEADER, rows, bold),
                  f'<img src="{html.escape(rel)}" alt="{html.escape(dataset)}">']
    return write_pages(out_dir, facts["bench_id"], md, parts)
