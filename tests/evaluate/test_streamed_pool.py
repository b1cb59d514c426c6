"""Evaluation without the training split in memory (`StreamedFeaturePool`) draws the same random
baseline rows, trains every fit on the same features and scores the same as the in-memory pool,
on a real SST-2 run whose contamination filter drops random draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill_core.config import load_config
from distill_core.evaluate import EvaluationData, EvaluationPlan, evaluate_selection
from distill_core.evaluate.baselines import random_rows
from distill_core.pipeline.stages.evaluate import baseline_filters


@pytest.fixture(scope="module")
def filtered(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory, run_stages):
    cfg = load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0,1]",
                             "run.name=streamed-pool", "synthesize.per_class=4",
                             "filter.contamination.embedding_threshold=0.5",
                             "evaluate.baselines=[random]"])
    store, _ = run_stages(cfg, tmp_path_factory.mktemp("runs"), "filter")
    return cfg, store


def test_streamed_pool_draws_and_scores_like_the_in_memory_pool(filtered) -> None:
    cfg, store = filtered
    memory = EvaluationData.from_store(store, baseline_filters(cfg, store))
    streamed = EvaluationData.streamed_from_store(store, baseline_filters(cfg, store))
    assert np.array_equal(streamed.pool.train_y, memory.pool.train_y)
    assert np.array_equal(streamed.evaluation.x, memory.evaluation.x)
    assert streamed.evaluation.texts == memory.evaluation.texts
    unfiltered = [random_rows(memory.pool.train_y, memory.pool.take_rows, 2, 4, seed, None)
                  for seed in (0, 1)]
    for seed in (0, 1):
        before, after = memory.random_subset(4, seed), streamed.random_subset(4, seed)
        assert after.rows.tolist() == before.rows.tolist() and after.short == before.short
        a, b = memory.pool.sample(before.rows), streamed.pool.sample(after.rows)
        assert np.array_equal(a.data.x, b.data.x) and a.data.texts == b.data.texts
        assert np.array_equal(a.data.y, b.data.y)
    # the filters dropped random draws: the refill is part of what matches
    assert any(set(u.rows) != set(memory.random_subset(4, s).rows)
               for s, u in enumerate(unfiltered))
    for replicate in (0, 1):
        a = memory.pool.replicate(memory.distilled, replicate)
        b = streamed.pool.replicate(streamed.distilled, replicate)
        assert np.array_equal(a.data.x, b.data.x) and a.data.texts == b.data.texts
    plan = EvaluationPlan.from_config(cfg)
    before = evaluate_selection(memory, plan, lambda _: None)
    after = evaluate_selection(streamed, plan, lambda _: None)
    assert "random" in before.column("setting").to_pylist()
    assert after.drop_columns(["wall_time_s"]).equals(before.drop_columns(["wall_time_s"]))


def test_streamed_pool_reads_the_corpus_once_per_random_draw(filtered, corpus_passes) -> None:
    """The evaluation split and the distilled rows come in one pass and every row once read is
    reused: counting the fits, then fitting them, for two learners, reads the corpus once for
    each random seed's draw and never for a replicate or a repeated sample. The filters that
    the draw goes through take its rows and the evaluation split from the pool's reads (they
    made a second pass per draw before, the first also reading the evaluation split again)."""
    from distill_core.evaluate import count_fits

    cfg, store = filtered
    passes = corpus_passes
    data = EvaluationData.streamed_from_store(store, baseline_filters(cfg, store))
    assert passes["n"] == 1  # the evaluation split and both replicates' distilled rows
    plan = EvaluationPlan.from_config(cfg)
    two_learners = EvaluationPlan(plan.method, plan.per_class, plan.seeds,
                                  plan.learners * 2, plan.baselines)
    total = count_fits(data, two_learners)
    scores = evaluate_selection(data, two_learners, lambda _: None)
    assert scores.num_rows == total == 8  # 2 learners x 2 replicates x (distilled, random)
    assert passes["n"] == 1 + 2  # one per seed: the draw's rows (the filters reuse them)
    first, second = scores.slice(0, 4), scores.slice(4, 4)
    assert first.column("accuracy").equals(second.column("accuracy"))


# The evaluate stage in a fresh process, on a copy of the filtered run: what it imported.
EVALUATE_IN_A_FRESH_PROCESS = """
import json, sys
from pathlib import Path
from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.pipeline.order import run_pipeline
from distill_core.pipeline.stage import StageContext
from tasks.executors import make_executor
cfg = RunConfig.model_validate(json.loads(Path(sys.argv[1]).read_text()))
store = RunStore(Path(sys.argv[2]), cfg.run_id())
before = "torch" in sys.modules
outcomes = run_pipeline(StageContext(cfg, store, make_executor(cfg.compute, cfg.faults)))
print(json.dumps({"torch_before": before, "torch_after": "torch" in sys.modules,
                  "evaluated": store.manifest("evaluate") is not None}))
"""


def test_a_linear_probe_evaluation_imports_no_torch(filtered, tmp_path: Path) -> None:
    """A run scored by the linear probe alone does not import torch in evaluate (about 2.5 s
    of a run's wall time here, and its memory): only the learners that train a torch model
    (`finetune`, `embeds_finetune`, ...) need it, and they import it when they fit."""
    import json
    import shutil
    import subprocess
    import sys

    cfg, store = filtered
    assert [spec.kind for spec in cfg.evaluate.learner_specs(cfg.teacher.temperature)] == \
        ["linear_probe"]
    runs = tmp_path / "runs"
    shutil.copytree(Path(store.root), runs / cfg.run_id())
    config = tmp_path / "config.json"
    config.write_text(json.dumps(cfg.model_dump(mode="json")))
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", EVALUATE_IN_A_FRESH_PROCESS, str(config),
                             str(runs)], cwd=root, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"torch_before": False, "torch_after": False, "evaluated": True}, seen
    from distill_core.learned.artifact import STAGE
    from distill_core.learners.embeds import LEARN_STAGE

    assert LEARN_STAGE == STAGE  # the name evaluate checks before importing the families
