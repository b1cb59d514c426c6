"""The declared pipeline: stage order and reads, the stages each method runs, typed method
options, the executor's batches and tasks, and `textdistill plan` on a real slice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distill_core.config import load_config
from distill_core.errors import ConfigError
from distill_core.faults import fault_hooks
from distill_core.methods import METHODS, get_method, method_names
from distill_core.pipeline.executor import ActorSpec, LocalExecutor, Resources
from distill_core.pipeline.order import PIPELINE, active_stages
from distill_core.pipeline.plan import plan_run
from distill_core.synthesize.base import JOINT_SELECTORS, SELECTORS

ROOT = Path(__file__).resolve().parents[2]


def names(*overrides: str) -> list[str]:
    return [s.name for s in active_stages(load_config(None, list(overrides)))]


def test_every_stage_reads_only_stages_declared_before_it() -> None:
    for cfg in (load_config(None, []), load_config(None, ["synthesize.method=dilm",
                                                          "filter.corpus=true"])):
        seen: set[str] = set()
        for stage in PIPELINE:
            assert set(stage.reads(cfg)) <= seen, stage.name
            seen.add(stage.name)


@pytest.mark.parametrize(("overrides", "expected"), [
    ((), ["ingest", "signals", "synthesize", "filter", "evaluate"]),
    (("synthesize.method=gradmatch",),
     ["ingest", "signals", "teacher", "synthesize", "filter", "evaluate"]),
    (("synthesize.soft_labels=true",),
     ["ingest", "signals", "teacher", "synthesize", "filter", "evaluate"]),
    (("filter.corpus=true",), ["ingest", "signals", "clean", "synthesize", "filter", "evaluate"]),
    (("synthesize.method=llm_synth",),
     ["ingest", "signals", "teacher", "generate", "synthesize", "filter", "evaluate"]),
])
def test_a_config_runs_only_the_stages_its_method_needs(overrides, expected) -> None:
    assert names(*overrides) == expected


def test_the_registry_agrees_with_the_selectors() -> None:
    assert set(method_names("selection")) == set(SELECTORS) | set(JOINT_SELECTORS)
    assert not set(SELECTORS) & set(JOINT_SELECTORS)
    for method in METHODS:
        if method.family == "selection":
            needs_teacher = (method.name in SELECTORS and SELECTORS[method.name].needs_teacher)
            assert ("teacher" in method.needs) == needs_teacher  # joint ones need none
        assert method.implementation() is not None
    with pytest.raises(KeyError, match="known: random"):
        get_method("kmean")


def test_method_options_are_typed_and_only_the_chosen_ones_enter_the_run_id() -> None:
    base = load_config(None, ["synthesize.method=kmeans"])
    assert base.synthesize.options().n_init == 3
    tuned = load_config(None, ["synthesize.method=kmeans", "synthesize.kmeans.n_init=5"])
    assert tuned.synthesize.options().n_init == 5 and tuned.run_id() != base.run_id()
    other = load_config(None, ["synthesize.method=kmeans", "synthesize.el2n.prune_hardest=0.3"])
    assert other.run_id() == base.run_id()  # options of a method not run change nothing
    with pytest.raises(ConfigError, match=r"synthesize\.kmeans\.ninit"):
        load_config(None, ["synthesize.kmeans.ninit=5"])
    with pytest.raises(ConfigError, match=r"synthesize\.method"):
        load_config(None, ["synthesize.method=kcenter"])


class _Doubler:
    progress = None
    where = "local"
    built = 0

    def __init__(self, factor: int) -> None:
        type(self).built += 1
        self.factor = factor

    def __call__(self, batch):
        return {"y": batch["x"] * self.factor}


def _add(shared: int, item: int) -> int:
    return shared + item


def test_local_executor_keeps_order_reuses_its_actor_and_runs_tasks() -> None:
    executor = LocalExecutor()
    x = np.arange(10)
    first = executor.map_batches(ActorSpec(_Doubler, {"factor": 3}, "test"), {"x": x},
                                 Resources(), 4, order=x[::-1])
    again = executor.map_batches(ActorSpec(_Doubler, {"factor": 3}, "test"), {"x": x},
                                 Resources(), 4)
    assert first.columns["y"].tolist() == (3 * x).tolist() == again.columns["y"].tolist()
    assert first.workers == {"local": 10} and _Doubler.built == 1  # one model load
    assert executor.map_tasks(_add, [1, 2], Resources(), 10) == [(11, "local"), (12, "local")]
    assert executor.run_task(_add, Resources(), 1, 2) == 3


def test_fault_config_becomes_executor_hooks() -> None:
    cfg = load_config(None, ["faults.kill_in_stage=filter", "faults.kill_actor_after_batches=2",
                             "faults.marker_dir=/tmp/m"])
    hooks = fault_hooks(cfg.faults)
    assert hooks.kill_before_publish == "filter"
    assert hooks.kill_actor_after == {"signals": 2} and hooks.marker_dir == "/tmp/m"


def test_plan_says_what_is_done_cached_or_to_compute(slice_dir: Path, tmp_path: Path,
                                                     run_stages) -> None:
    # Without the row cache, so that signals is kept whole in the stage cache (with it, each
    # ingest part's embeddings are kept instead: tests/signals/test_part_cache.py).
    cfg = load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0]",
                             "synthesize.per_class=3", "run.name=plan",
                             "signals.row_cache=false"])
    fresh = {p.name: p for p in plan_run(cfg, tmp_path)}
    assert fresh["ingest"].status == "compute" and fresh["ingest"].fingerprint
    assert fresh["signals"].status == "unknown" and fresh["signals"].note == "after ingest"
    assert fresh["teacher"].status == "skipped" and not fresh["teacher"].runs
    assert not (tmp_path / cfg.run_id()).exists()  # nothing was computed or written
    _, outcomes = run_stages(cfg, tmp_path, until="filter")
    done = {p.name: p for p in plan_run(cfg, tmp_path)}
    for outcome in outcomes:
        assert done[outcome.stage].status == "done"
        assert done[outcome.stage].fingerprint == outcome.fingerprint
    assert done["evaluate"].status == "compute" and done["evaluate"].rows_in["filter"] == 6
    other = cfg.model_copy(update={"synthesize": cfg.synthesize.model_copy(
        update={"method": "herding"})})
    cached = {p.name: p for p in plan_run(other, tmp_path)}
    assert cached["ingest"].status == cached["signals"].status == "cached"
    assert cached["signals"].where.startswith(str(tmp_path / ".cache" / "signals"))
    assert cached["synthesize"].status == "compute"


def test_plan_cli_prints_json_and_fails_cleanly_on_missing_data(slice_dir: Path,
                                                                tmp_path: Path) -> None:
    command = [sys.executable, "-m", "flows.cli", "plan", str(ROOT / "configs" / "quickstart.yaml"),
               "--runs-dir", str(tmp_path), "--json"]
    ok = subprocess.run(command + ["--data-dir", str(slice_dir)], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    stages = json.loads(ok.stdout)["stages"]
    assert [s["name"] for s in stages if s["runs"]] == ["ingest", "signals", "clean",
                                                        "synthesize", "filter", "evaluate"]
    bad = subprocess.run(command + ["--data-dir", str(tmp_path / "nowhere")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stdout + bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "nowhere" in bad.stderr
    assert not bad.stdout.strip()
