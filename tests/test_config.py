"""Config loading: unknown keys and wrong types are clear errors; overrides; run ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_core.config import load_config
from distill_core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_config_is_valid() -> None:
    cfg = load_config(ROOT / "configs" / "quickstart.yaml")
    assert cfg.data.dataset == "sst2" and cfg.synthesize.method == "auto" and cfg.filter.corpus
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
    with pytest.raises(ConfigError, match=r"evaluate\.learners\.1\.kind \(--set"):
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


@pytest.mark.parametrize("name", ["quickstart.yaml", "cpu-small.yaml", "gpu-1b.yaml",
                                  "bench-cpu.yaml", "bench-standard.yaml", "serve.yaml"])
def test_shipped_configs_have_no_duplicate_keys(name: str) -> None:
    from distill_core.config import read_yaml_file

    assert read_yaml_file(ROOT / "configs" / name)


def test_a_key_given_twice_is_an_error_naming_the_key_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("synthesize:\n  method: random\nrun:\n  name: a\nsynthesize:\n"
                    "  per_class: 3\n")
    with pytest.raises(ConfigError, match=r"line 5.*duplicate key 'synthesize' \(first given "
                                          r"at line 1\)"):
        load_config(path)
    path.write_text("synthesize:\n  per_class: 3\n  per_class: 4\n")
    with pytest.raises(ConfigError, match=r"line 3.*duplicate key 'per_class'"):
        load_config(path)
    path.write_text("base: &b {per_class: 3}\nsynthesize:\n  <<: *b\n  method: random\n")
    with pytest.raises(ConfigError, match="base"):  # a merge is no duplicate (base is unknown)
        load_config(path)
    with pytest.raises(ConfigError, match=r"--set .*duplicate key 'a'"):
        load_config(None, ["evaluate.learners=[{kind: finetune, a: 1, a: 2}]"])


def test_benchmark_config_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    from distill_core.bench.config import load_bench_config

    path = tmp_path / "b.yaml"
    path.write_text("name: x\nbudgets: [5]\nbudgets: [10]\n")
    with pytest.raises(ConfigError, match=r"line 3.*duplicate key 'budgets'"):
        load_bench_config(path)


def test_a_config_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("run:\n  name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"c\.yaml: not UTF-8 text \(byte 0xe9 at offset "
                                          r"16\): save the config as UTF-8"):
        load_config(path)


def test_bad_override_yaml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"--set 'synthesize\.per_class=\[1'.*line 1"):
        load_config(None, ["synthesize.per_class=[1"])


@pytest.mark.parametrize(("override", "words"), [
    ("run.seeds=[-1]", r"run\.seeds \(--set run\.seeds=\[-1\]\): seeds must be integers from "
                       "0 to 4294967295"),
    ("run.seeds=[4294967296]", "got 4294967296"),
    ("run.name=" + "a" * 250, r"run\.name \(--set run\.name=a+\): run\.name has 250 "
                              r"characters.*at most 100"),
    ("signals.max_length=100000", r"signals\.max_length \(--set [^)]+\): .*less than or "
                                  "equal to 8192"),
    ("evaluate.baselines=[]", r"evaluate\.baselines: give at least 1 item"),
    ("evaluate.baselines=[random, random]", "baselines must be distinct"),
    ("data.dataset=nope", "unknown dataset 'nope'; registered datasets: ag_news"),
    ("data.dataset=null", r"data \(--set data\.dataset=null\): give a registered `dataset` "
                          "name, or both `train` and `eval`"),
])
def test_values_checkable_at_load_are_checked_at_load(override: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as error:
        load_config(None, [override])
    assert "\n" not in str(error.value)  # one line


def test_seed_and_name_limits_are_inclusive() -> None:
    cfg = load_config(None, ["run.seeds=[0, 4294967295]", "run.name=" + "a" * 100,
                             "signals.max_length=512"])
    assert cfg.run.seeds == [0, 4294967295] and len(cfg.run_id()) == 111


def test_validation_errors_are_one_line_listing_every_key() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, ["synthesize.per_class=0", "run.seeds=[]"])
    message = str(error.value)
    assert "\n" not in message and message.startswith("invalid configuration: ")
    assert "run.seeds (--set run.seeds=[]):" in message
    assert "synthesize.per_class (--set synthesize.per_class=0):" in message
    assert "defaults" not in message


def test_a_problem_names_where_its_value_came_from(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("run:\n  seeds: [-1]\ndata:\n  dataset: sst2\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ["data.dataset=sst3", "synthesize.per_class=3"])
    message = str(error.value)
    assert f"run.seeds (in {path}): seeds must be integers" in message
    assert ("data.dataset (--set data.dataset=sst3): unknown dataset 'sst3'; did you mean "
            "'sst2'? registered datasets: ag_news, mrpc") in message
    assert "per_class" not in message  # a valid override is not blamed
    # the last --set of a key is the one that counts
    with pytest.raises(ConfigError, match=r"data\.dataset \(--set data\.dataset=nope\)"):
        load_config(path, ["data.dataset=sst5_kim", "data.dataset=nope"])


@pytest.mark.parametrize(("text", "overrides", "expected"), [
    ("data:\n  datset: sst2\n", [],
     "unknown key data.datset (in {path}); did you mean data.dataset?"),
    ("dataa: {}\n", [], "unknown key dataa (in {path}); did you mean data?"),
    ("synthesize:\n  kmean: {n_init: 2}\n", [],
     "unknown key synthesize.kmean (in {path}); did you mean synthesize.kmeans?"),
    ("", ["synthesize.kmeans.n_iit=3"], "unknown key synthesize.kmeans.n_iit (--set "
     "synthesize.kmeans.n_iit=3); did you mean synthesize.kmeans.n_init?"),
    ("evaluate:\n  learners: [{kind: finetune, stepz: 3}]\n", [],
     "unknown key evaluate.learners.0.stepz (in {path}); did you mean "
     "evaluate.learners.0.steps?"),
    ("run:\n  zzzz: 1\n", [], "unknown key run.zzzz (in {path})"),
])
def test_unknown_keys_name_the_file_or_set_and_the_closest_key(
        tmp_path: Path, text: str, overrides: list[str], expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path, overrides)
    message = str(error.value)
    assert message == "invalid configuration: " + expected.format(path=path), message


def test_benchmark_config_checks_datasets_and_run_sections_at_load(tmp_path: Path) -> None:
    from distill_core.bench.config import load_bench_config

    path = tmp_path / "b.yaml"
    path.write_text("datasets: [sst3]\nbudgts: [5]\n")
    with pytest.raises(ConfigError) as error:
        load_bench_config(path)
    assert str(error.value) == (
        f"invalid configuration: datasets (in {path}): unknown dataset 'sst3'; did you mean "
        "'sst2'? registered datasets: ag_news, mrpc, rte, sick, sst2, sst2_kim, sst5_kim; "
        f"unknown key budgts (in {path}); did you mean budgets?")
    path.write_text("run:\n  signal: {batch_size: 8}\n")
    with pytest.raises(ConfigError, match=rf"unknown key run\.signal \(in {path}\); did you "
                                          r"mean run\.signals\?"):
        load_bench_config(path)
    path.write_text("run: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key run\.synthesize\.kmeans\.n_iit \(--set "
                                          r"run\.synthesize\.kmeans\.n_iit=2\); did you mean "
                                          r"run\.synthesize\.kmeans\.n_init\?"):
        load_bench_config(path, ["run.synthesize.kmeans.n_iit=2"])
    assert load_bench_config(path, ["run.synthesize.kmeans.n_init=2"]).run == {
        "synthesize": {"kmeans": {"n_init": 2}}}


def test_a_config_path_that_is_no_yaml_text_file_is_one_error(tmp_path: Path) -> None:
    from distill_core.config import read_yaml_file

    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"run:\x00\x01\x02")
    cases = {tmp_path: "is a folder, not a config file", tmp_path / "no.yaml": "not found",
             binary: "a binary file (NUL bytes at offset 4), not a YAML config"}
    for path, words in cases.items():
        with pytest.raises(ConfigError) as error:
            read_yaml_file(path)
        assert str(error.value).startswith(f"{path}: ") and words in str(error.value)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfrun: {name: x}\n")  # a UTF-8 BOM is fine
    assert read_yaml_file(bom) == {"run": {"name": "x"}}


def test_max_length_is_checked_against_the_encoder() -> None:
    from distill_core.model_limits import check_model_limits, encoder_token_limit

    assert encoder_token_limit("all-MiniLM-L6-v2") == 512
    check_model_limits(load_config(None, ["signals.max_length=512"]))
    with pytest.raises(ConfigError, match=r"signals\.max_length=1000 is more than the encoder "
                                          r"'all-MiniLM-L6-v2' takes \(512 tokens\)"):
        check_model_limits(load_config(None, ["signals.max_length=1000"]))
    assert encoder_token_limit("no-such-org/no-such-model") is None  # unknown: not checked


def test_a_learned_decoder_falling_back_to_generate_model_is_in_the_run_id() -> None:
    """decode: decoder without decoder_model runs `generate.model`: it names the run (and the
    learn stage's settings), so another decoder is never served a cached result."""
    from distill_core.pipeline.stages.learn import _settings

    decoder = ["synthesize.method=learned_meta", "synthesize.learned_meta.decode=decoder"]
    smol, gpt2 = load_config(None, decoder), load_config(None, [*decoder, "generate.model=gpt2"])
    assert smol.run_id() != gpt2.run_id()
    assert _settings(gpt2)["decoder_identity"] == {"model": "gpt2", "source": "hub"}
    assert _settings(smol)["decoder_identity"]["model"] == smol.generate.model
    named = [*decoder, "synthesize.learned_meta.decoder_model=gpt2"]
    assert load_config(None, named).run_id() == load_config(
        None, [*named, "generate.model=smollm2"]).run_id()  # decoder_model wins: unread
    matched = ["synthesize.method=learned_meta"]  # no decoder at all
    assert load_config(None, matched).run_id() == load_config(
        None, [*matched, "generate.model=gpt2"]).run_id()
    assert "decoder_identity" not in _settings(load_config(None, matched))
    assert load_config(None, [*decoder, "generate.max_new_tokens=7"]).run_id() == smol.run_id()


@pytest.mark.parametrize("method", ["dilm", "llm_synth", "learned_meta"])
def test_soft_labels_are_refused_where_nothing_attaches_them(method: str) -> None:
    with pytest.raises(ConfigError, match=f"synthesize.soft_labels: {method} does not attach"):
        load_config(None, [f"synthesize.method={method}", "synthesize.soft_labels=true"])
    assert load_config(None, ["synthesize.method=herding", "synthesize.soft_labels=true"])


def test_a_soft_label_benchmark_asks_selection_methods_only_for_the_teacher_s() -> None:
    import yaml

    from distill_core.bench.config import BenchConfig

    grid = yaml.safe_load((ROOT / "configs" / "bench-cpu.yaml").read_text())
    cfg = BenchConfig.model_validate({**grid, "methods": ["herding", "dilm", "learned_meta"]})
    assert [cfg.run_config("sst2", m, 5).synthesize.soft_labels
            for m in cfg.methods] == [True, False, False]


def test_center_features_names_only_runs_whose_selection_reads_it() -> None:
    def same(*given: str) -> bool:
        return load_config(None, list(given)).run_id() == load_config(
            None, [*given, "synthesize.center_features=true"]).run_id()

    assert not same("synthesize.method=herding")  # a selection method centres
    for method in ("auto", "dilm", "learned_meta"):  # these never do
        assert same(f"synthesize.method={method}"), method
    # instruction rankings read raw embeddings: the key is refused there, not ignored
    with pytest.raises(ConfigError, match="synthesize.center_features .* does not apply"):
        same("data.task=instruction", "data.instruction={preset: gsm8k}",
             "synthesize.method=kmeans")


def test_generate_max_similarity_names_llm_synth_runs_only() -> None:
    def same(method: str, *given: str) -> bool:
        base = [f"synthesize.method={method}", *given]
        return load_config(None, base).run_id() == load_config(
            None, [*base, "generate.max_similarity=0.5"]).run_id()

    assert same("dilm")  # dilm chooses by cluster and teacher, never by similarity
    assert not same("llm_synth")
    assert load_config(None, ["synthesize.method=dilm"]).run_id() != load_config(
        None, ["synthesize.method=dilm", "generate.teacher_tau=0.9"]).run_id()


def test_static_fit_is_read_for_a_static_model_only_and_refused_elsewhere() -> None:
    static = "signals.model=static:all-MiniLM-L6-v2"
    assert "static_fit" not in load_config(None, []).semantic_dict()["signals"]
    with pytest.raises(ConfigError, match="signals.static_fit applies to a static"):
        load_config(None, ["signals.static_fit.rows=10"])
    with pytest.raises(ConfigError, match="signals.static_fit.l2 is not read"):
        load_config(None, [static, "signals.static_fit.rows=0", "signals.static_fit.l2=1"])
    fitted = load_config(None, [static]).run_id()
    assert fitted != load_config(None, [static, "signals.static_fit.l2=0.1"]).run_id()
    assert fitted != load_config(None, [static, "signals.static_fit.rows=0"]).run_id()
