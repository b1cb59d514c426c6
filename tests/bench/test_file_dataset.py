"""A benchmark dataset given as a run config's `data:` block (file sources) instead of a
registered name: validated at load, carried into every cell's run config, scored end to end."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from distill_core.bench.cells import FULL, score_cells
from distill_core.bench.config import BenchConfig, load_bench_config
from distill_core.bench.grid import plan_cells, plan_groups
from distill_core.errors import ConfigError
from distill_core.filter.stage import clean_corpus
from distill_core.filter_settings import FilterSection
from distill_core.pipeline.filter_context import filter_context


def _file(path: Path) -> dict:
    return {"file": {"path": str(path), "format": "tsv", "quoting": False, "text": "sentence",
                     "label": "label", "label_map": {"0": "negative", "1": "positive"}}}


def _bench(slice_dir: Path) -> dict:
    glue = slice_dir / "sst2_glue"
    return {"name": "files", "methods": ["kmeans"], "budgets": [2], "seeds": [0],
            "datasets": [{"name": "mine", "dataset": None, "train": _file(glue / "train.tsv"),
                          "eval": _file(glue / "dev.tsv"),
                          "label_names": ["negative", "positive"]}]}


def test_file_dataset_validates_and_reaches_each_run_config(slice_dir: Path,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(_bench(slice_dir)))
    cfg = load_bench_config(path)
    assert cfg.dataset_names() == ["mine"]
    (group,) = plan_groups(cfg, tmp_path / "runs")
    data = group.config.data
    assert group.dataset == "mine" and data.dataset is None
    assert data.train.file.path == str(slice_dir / "sst2_glue" / "train.tsv")
    assert data.eval.file.path == str(slice_dir / "sst2_glue" / "dev.tsv")
    assert data.label_names == ["negative", "positive"]
    assert group.config.run.name == "files-mine-kmeans-2pc"
    mixed = BenchConfig.model_validate({**_bench(slice_dir),
                                        "datasets": ["sst2", *_bench(slice_dir)["datasets"]]})
    assert mixed.dataset_names() == ["sst2", "mine"]
    assert mixed.run_config("sst2", "kmeans", 2).data.dataset == "sst2"
    moved = _bench(slice_dir)
    moved["datasets"][0]["data_dir"] = "/elsewhere"
    assert BenchConfig.model_validate(moved).bench_id() == cfg.bench_id()


@pytest.mark.parametrize(("entry", "message"), [
    ({"dataset": None, "train": {"file": {"path": "t.tsv", "text": "s", "label": "l"}},
      "eval": {"file": {"path": "e.tsv", "text": "s", "label": "l"}}}, "needs a `name`"),
    ({"name": "x", "dataset": None}, "both `train` and `eval`"),
    ({"name": "x", "dataset": "sst9"}, "sst9"),
])
def test_bad_file_dataset_entries_are_config_errors(entry: dict, message: str,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump({"datasets": [entry]}))
    with pytest.raises(ConfigError, match=message):
        load_bench_config(path)
    path.write_text(yaml.safe_dump({"datasets": ["sst2", {"name": "sst2", "dataset": "sst2"}]}))
    with pytest.raises(ConfigError, match="distinct"):
        load_bench_config(path)


def test_a_file_dataset_cell_scores_end_to_end(slice_dir: Path, tmp_path: Path,
                                               run_stages) -> None:
    cfg = BenchConfig.model_validate(_bench(slice_dir))
    (group,) = plan_groups(cfg, tmp_path / "runs")
    store, _ = run_stages(group.config, tmp_path / "runs", until="filter")
    assert store.root == Path(group.run_dir)
    cells = plan_cells(cfg, [group])
    rows = {r["method"]: r for r in score_cells(cells, {c.learner: cfg.learners[0]
                                                        for c in cells}, str(tmp_path / "c"))}
    assert set(rows) == {"kmeans", FULL} and rows["kmeans"]["dataset"] == "mine"
    assert rows["kmeans"]["n_train"] == 4 and 0 <= rows["kmeans"]["accuracy"] <= 1
    dev = len((slice_dir / "sst2_glue" / "dev.tsv").read_bytes().splitlines()) - 1
    assert rows[FULL]["n_eval"] == dev
    ingest = store.manifest("ingest")
    assert ingest["inputs"]["sources"][0]["source"] == str(slice_dir / "sst2_glue" / "train.tsv")
    # full: the training split after the run's contamination filter, as in the evaluate stage
    corpus = store.read("ingest")
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    contamination = FilterSection(exact_dedup=False,
                                  contamination=group.config.filter.contamination)
    clean = clean_corpus(train, contamination, filter_context(store, False))
    assert rows[FULL]["n_train"] == clean.kept.num_rows
