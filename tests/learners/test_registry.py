"""The learner registry and its settings model: the kinds, clear errors, stable cell keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from distill_core.bench.config import load_bench_config
from distill_core.errors import ConfigError
from distill_core.learners import LEARNERS, LearnerSpec, get_learner, learner_kinds

ROOT = Path(__file__).resolve().parent.parent.parent


def test_registry_lists_the_kinds_each_with_its_training_function() -> None:
    assert learner_kinds() == ["linear_probe", "finetune", "scratch", "embeds_finetune"]
    assert [learner.synthetic_only for learner in LEARNERS] == [False, False, False, True]
    for learner in LEARNERS:
        assert callable(learner.train_fn()) and learner.summary


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown learner kind 'svm'; known: linear_probe"):
        get_learner("svm")
    with pytest.raises(ValidationError,
                       match="'linear_probe', 'finetune', 'scratch' or 'embeds_finetune'"):
        LearnerSpec(kind="svm")


def test_unknown_kind_in_a_benchmark_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text("learners:\n  - kind: svm\n")
    with pytest.raises(ConfigError, match=r"learners\.0\.kind"):
        load_bench_config(path)


@pytest.mark.parametrize("name", ["bench-cpu.yaml", "bench-standard.yaml",
                                  "bench-generative-cpu.yaml"])
def test_benchmark_configs_validate_unchanged(name: str) -> None:
    cfg = load_bench_config(ROOT / "configs" / name)
    assert cfg.learners[0].kind == "linear_probe"


def test_identity_is_what_cell_keys_hashed_before_the_registry() -> None:
    # The bench's cell keys hash identity(): these are its fields and defaults as they were,
    # so cells scored before the registry are found again (CELL_VERSION unchanged).
    assert LearnerSpec(kind="finetune").identity() == {
        "kind": "finetune", "model": "all-MiniLM-L6-v2", "steps": 200, "batch_size": 64,
        "lr": None, "warmup_ratio": 0.5, "weight_decay": 0.01, "max_length": 128, "layers": 2,
        "hidden": 128, "heads": 4, "intermediate": 512, "C": 1.0, "max_iter": 2000,
        "temperature": 1.0}


def test_training_settings_come_from_the_spec_with_the_kind_default_lr() -> None:
    spec = LearnerSpec(kind="scratch", steps=7, hidden=64)
    settings = spec.finetune_settings(seed=3, default_lr=5e-4)
    assert (settings.steps, settings.lr, settings.seed, settings.batch_size) == (7, 5e-4, 3, 64)
    assert spec.architecture().hidden == 64
    assert LearnerSpec(kind="finetune", lr=2e-5).finetune_settings(0, 1e-4).lr == 2e-5
