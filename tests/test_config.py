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
