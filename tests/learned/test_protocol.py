"""The steps `embeds_finetune` takes on a learned set: the family's inner loop, or for
trajectory matching the replay of its steps over the experts' whole trajectory."""

from __future__ import annotations

import pytest

from distill_core.methods.learned_protocol import evaluation_steps
from distill_core.methods.options import LearnedMetaOptions, LearnedTrajectoryOptions


@pytest.mark.parametrize(("checkpoints", "span", "inner", "steps"), [
    (10, 2, 1, 5),  # the defaults: 5 synthetic steps reach the last checkpoint
    (10, 3, 1, 4),  # a span that does not divide the trajectory: one step past its end
    (4, 1, 2, 8),
])
def test_trajectory_matching_replays_its_steps_over_the_trajectory(
        checkpoints: int, span: int, inner: int, steps: int) -> None:
    options = LearnedTrajectoryOptions(expert_checkpoints=checkpoints, expert_span=span,
                                       inner_steps=inner, decode="nearest_sentence")
    assert evaluation_steps("trajectory_matching", options.model_dump()) == steps


def test_the_other_families_take_their_inner_steps() -> None:
    options = LearnedMetaOptions(inner_steps=3, decode="nearest_sentence").model_dump()
    for family in ("meta_matching", "gradient_matching", "distribution_matching"):
        assert evaluation_steps(family, options) == 3
    defaults = LearnedTrajectoryOptions().model_dump()
    assert evaluation_steps("trajectory_matching", defaults) == 5
    assert evaluation_steps("meta_matching", defaults) == 1


def test_the_evaluate_stage_fingerprints_the_replay_only_where_it_runs() -> None:
    """A trajectory run scored by embeds_finetune carries the replay's step count in the
    evaluate stage's settings, so its scores from the one-step protocol are not reused; no
    other run's evaluate settings change."""
    from distill_core.config import load_config
    from distill_core.pipeline.stages.evaluate import EVALUATE

    learners = "evaluate.learners=[embeds_finetune, linear_probe]"
    trajectory = load_config(None, ["synthesize.method=learned_trajectory", learners,
                                    "synthesize.learned_trajectory.expert_span=3"])
    assert EVALUATE.settings(trajectory)["embeds_finetune_steps"] == 4  # ceil(10 / 3)
    for overrides in (["synthesize.method=learned_trajectory"],  # probe only: no replay
                      ["synthesize.method=learned_meta", learners], []):
        assert "embeds_finetune_steps" not in EVALUATE.settings(load_config(None, overrides))


def test_a_bench_cell_of_embeds_finetune_is_keyed_by_the_replay(tmp_path) -> None:
    """The bench grid's saved cells: an `embeds_finetune` score of a trajectory run is keyed
    by the protocol it ran (a cell scored with another step count is not reused); other
    learners' keys ignore the learn stage."""
    import json

    from distill_core.artifacts.parts import REQUIRED_KEYS
    from distill_core.artifacts.store import RunStore
    from distill_core.bench.cells import cell_key
    from distill_core.learners.spec import LearnerSpec

    def key(learner: str, span: int) -> str:
        store = RunStore(tmp_path / f"span{span}", "run")
        (store.root / "learn").mkdir(parents=True, exist_ok=True)
        options = LearnedTrajectoryOptions(expert_span=span).model_dump()
        (store.root / "learn" / "manifest.json").write_text(json.dumps({
            **{k: None for k in REQUIRED_KEYS}, "parts": {},
            "family": "trajectory_matching", "model": "m",
            "stage_config": {"options": options}}))
        return cell_key(LearnerSpec(kind=learner), 0, "hard", "sst2", "learned_trajectory",
                        1, store)

    assert key("embeds_finetune", 2) != key("embeds_finetune", 5)  # 5 steps against 2
    assert key("linear_probe", 2) == key("linear_probe", 5)
