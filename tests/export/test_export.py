"""`textdistill export` on a real MRPC slice run (pairs, soft labels, two seeds): the folder
reads back with `load_from_disk` and `load_dataset`, keeps the run's rows, labels and lineage,
carries a card naming the run; expected failures are one line and exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from distill_core.config import load_config
from distill_core.errors import ArtifactError, ConfigError, DataSourceUnavailable
from distill_core.export import check_push, export_run
from distill_core.export.dataset import FinishedRun

ROOT = Path(__file__).resolve().parents[2]
PER_CLASS = 2


@pytest.fixture(scope="module")
def run(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory, run_stages):
    """One finished run: MRPC pairs, kmeans, 2 per class, seeds 0 and 7, soft labels."""
    cfg = load_config(None, [f"data.data_dir={slice_dir}", "data.dataset=mrpc",
                             "run.seeds=[0,7]", f"synthesize.per_class={PER_CLASS}",
                             "synthesize.soft_labels=true", "run.name=export"])
    store, _ = run_stages(cfg, tmp_path_factory.mktemp("runs"))
    return store


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=120)


def _one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    both = result.stdout + result.stderr
    assert result.returncode == 2, both
    assert "Traceback" not in both, both
    lines = [line for line in both.splitlines() if line.strip()]
    assert len(lines) == 1, both
    for word in words:
        assert word in lines[0], both
    return lines[0]


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every replicate exported through the CLI, as a user runs it."""
    out = tmp_path_factory.mktemp("exports") / "all"
    result = _cli("export", str(run.root), str(out), "--all-replicates")
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def _ids(run, replicate: int) -> list[str]:
    distilled = run.read("filter")
    rows = distilled.filter(pc.equal(distilled.column("replicate"), replicate))
    return rows.column("example_id").to_pylist()


def _check(dataset_dict, run) -> None:
    labels = run.manifest("ingest")["label_names"]
    assert list(dataset_dict) == ["seed_0", "seed_7"]
    for replicate, split in enumerate(dataset_dict.values()):
        assert split.features["label"].names == labels
        assert split.num_rows == PER_CLASS * len(labels)
        assert split["example_id"] == _ids(run, replicate)
        assert sorted(split["label"]) == sorted(list(range(len(labels))) * PER_CLASS)
        assert all(len(s) == len(labels) and abs(sum(s) - 1) < 1e-4
                   for s in split["soft_label"])
        assert all(p for p in split["text_pair"])  # a pair task keeps its second text
        assert split["parent_ids"] == [[e] for e in split["example_id"]]  # selected rows
        assert set(split["origin"]) == {"selected"}


def test_load_from_disk_reads_every_replicate(exported: Path, run) -> None:
    from datasets import load_from_disk

    _check(load_from_disk(str(exported)), run)


def test_load_dataset_reads_the_parquet_copy(exported: Path, run, tmp_path: Path) -> None:
    from datasets import load_dataset

    loaded = load_dataset(str(exported), cache_dir=str(tmp_path / "hf"))
    _check(loaded, run)
    assert sorted(p.name for p in (exported / "data").iterdir()) == [
        "seed_0-00000-of-00001.parquet", "seed_7-00000-of-00001.parquet"]


def test_card_names_the_run_method_and_sources(exported: Path, run) -> None:
    metadata, body = _card(exported)
    filtered = run.manifest("filter")
    assert metadata["textdistill"]["method"] == "kmeans"
    assert metadata["textdistill"]["config_hash"] == filtered["config_hash"]
    assert metadata["textdistill"]["run_id"] == run.run_id
    assert metadata["license"] == "other" and metadata["task_categories"] == [
        "text-classification"]
    assert metadata["size_categories"] == ["n<1K"]
    assert [f["split"] for f in metadata["configs"][0]["data_files"]] == ["seed_0", "seed_7"]
    label = next(f for f in metadata["dataset_info"]["features"] if f["name"] == "label")
    assert list(label["dtype"]["class_label"]["names"].values()) == ["not_paraphrase",
                                                                   "paraphrase"]
    for source in run.manifest("ingest")["inputs"]["sources"]:
        assert source["sha256"] in body
    assert "## Scores" in body and "| random |" in body and "| full |" in body
    assert "13-word n-gram" in body  # the contamination check was on
    assert f"textdistill audit {run.root} --example {_ids(run, 0)[0]}" in body
    assert f"{2 * 2 * PER_CLASS} selected from the training split, 0 generated" in body


def test_default_is_the_first_replicate_and_replicate_picks_one(run, tmp_path: Path) -> None:
    from datasets import load_from_disk

    first = export_run(run.root, tmp_path / "first")
    assert first.rows == {"train": 2 * PER_CLASS}
    assert load_from_disk(str(first.folder))["train"]["example_id"] == _ids(run, 0)
    second = export_run(run.root, tmp_path / "second", replicate=1)
    assert load_from_disk(str(second.folder))["train"]["example_id"] == _ids(run, 1)
    with pytest.raises(ConfigError, match="no replicate 2"):
        export_run(run.root, tmp_path / "third", replicate=2)


def test_out_is_replaced_only_with_overwrite_and_only_an_export(run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_run(run.root, out)
    with pytest.raises(ArtifactError, match="--overwrite"):
        export_run(run.root, out, replicate=1)
    export_run(run.root, out, replicate=1, overwrite=True)
    assert _card(out)[1].count("| train | 1 | 7 |") == 1
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not an earlier export"):
        export_run(run.root, other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"


def test_unfinished_run_is_refused(run, tmp_path: Path) -> None:
    copy = tmp_path / run.run_id
    shutil.copytree(run.root, copy)
    shutil.rmtree(copy / "filter")
    with pytest.raises(ArtifactError, match="has not finished"):
        FinishedRun.open(copy)


def test_push_without_network_fails_fast_in_one_line(run, tmp_path: Path) -> None:
    out = tmp_path / "pushed"
    started = time.monotonic()
    # A real connection attempt, refused: a closed port on this host stands for the hub.
    result = _cli("export", str(run.root), str(out), "--push", "someone/distilled",
                  env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"})
    _one_line_error(result, "Hugging Face hub", "127.0.0.1:9", "--push")
    assert time.monotonic() - started < 60
    assert not out.exists()  # checked before anything is written


def test_push_in_offline_mode_names_the_setting(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataSourceUnavailable, match="HF_HUB_OFFLINE is set"):
        check_push("someone/distilled")


def test_a_folder_that_is_not_a_run_is_one_line(tmp_path: Path) -> None:
    result = _cli("export", str(tmp_path), str(tmp_path / "out"))
    _one_line_error(result, str(tmp_path), "not a textdistill run folder")
