"""Config loading: unknown keys and wrong types are clear errors; overrides; run ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_core.config import load_config
from distill_core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_config_is_valid() -> None:
    cfg = load_config(ROOT / "configs" / "quickstart.yaml")
    assert cfg.data.dataset == "sst2" and cfg.synthesize.method == "kmeans"
    assert cfg.synthesize.per_class == 10


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("synthesize:\n  methd: kmeans\n")
    with pytest.raises(ConfigError, match=r"synthesize\.methd"):
        load_config(path)


def test_wrong_type_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"synthesize\.per_class"):
        load_config(None, ["synthesize.per_class=ten"])


def test_unknown_method_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"synthesize\.method"):
        load_config(None, ["synthesize.method=magic"])


def test_overrides_parse_yaml_values() -> None:
    cfg = load_config(None, ["run.seeds=[3, 4]", "synthesize.per_class=5",
                             "signals.precision=bf16"])
    assert cfg.run.seeds == [3, 4] and cfg.synthesize.per_class == 5
    assert cfg.signals.precision == "bf16"


def test_bad_override_syntax() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["synthesize.per_class"])


def test_run_id_depends_on_results_not_on_where_it_runs() -> None:
    base = load_config(None, [])
    assert base.run_id() == load_config(None, ["compute.backend=ray"]).run_id()
    assert base.run_id() == load_config(None, ["data.data_dir=/elsewhere"]).run_id()
    assert base.run_id() != load_config(None, ["synthesize.method=random"]).run_id()


def test_run_name_cannot_escape_the_runs_folder() -> None:
    with pytest.raises(ConfigError, match="run.name"):
        load_config(None, ["run.name=../../etc"])


def test_evaluate_learners_accept_kind_names_and_full_settings() -> None:
    default = load_config(None, [])
    assert default.evaluate.learners == ["linear_probe"]
    cfg = load_config(None, ["evaluate.learners=[linear_probe, {kind: finetune, steps: 5, "
                             "name: ft}, scratch]", "evaluate.C=0.5", "teacher.temperature=2"])
    probe, tuned, scratch = cfg.evaluate.learner_specs(cfg.teacher.temperature)
    assert (probe.kind, probe.C, probe.max_iter, probe.temperature) == ("linear_probe", 0.5,
                                                                          2000, 2.0)
    assert (tuned.kind, tuned.label(), tuned.steps) == ("finetune", "ft", 5)
    assert scratch.kind == "scratch" and scratch.label() == "scratch"
    own = load_config(None, ["evaluate.learners=[{kind: linear_probe, C: 4}]"])
    assert own.evaluate.learner_specs(1.0)[0].C == 4  # an entry's own setting wins


def test_evaluate_learner_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"evaluate\.learners\.0.*'linear_probe', 'finetune'"):
        load_config(None, ["evaluate.learners=[svm]"])
    with pytest.raises(ConfigError, match=r"evaluate\.learners\.1\.spec\.kind"):
        load_config(None, ["evaluate.learners=[linear_probe, {kind: svm}]"])
    with pytest.raises(ConfigError, match="distinct"):
        load_config(None, ["evaluate.learners=[finetune, {kind: finetune, lr: 1e-5}]"])
    with pytest.raises(ConfigError, match="datasets only apply in a benchmark"):
        load_config(None, ["evaluate.learners=[{kind: finetune, datasets: [sst2]}]"])
    with pytest.raises(ConfigError, match=r"evaluate\.learner\b"):
        load_config(None, ["evaluate.learner=linear_probe"])  # the old key is gone


@pytest.mark.parametrize("name", ["quickstart.yaml", "cpu-small.yaml", "gpu-1b.yaml"])
def test_shipped_configs_use_the_learners_list(name: str) -> None:
    import yaml

    from distill_core.config import EvaluateSection

    section = yaml.safe_load((ROOT / "configs" / name).read_text())["evaluate"]
    assert EvaluateSection.model_validate(section).learners == ["linear_probe"]
