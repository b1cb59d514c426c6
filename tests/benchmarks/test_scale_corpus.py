"""The scale benchmark's corpus builder on the real SST-2 files: rows are distinct, each is
2-3 real training sentences of its own label, the build is seeded, the evaluation file is
the real one unchanged, and the project's ingest reads the corpus with its shipped config."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchmarks.scale_corpus import CorpusSpec, build_corpus, sentence_pools, sha256_of
from distill_core.ingest.registry import get_dataset
from distill_core.ingest.sources import SplitSource

ROOT = Path(__file__).resolve().parents[2]
ROWS = 3000


def _texts(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def _joins(text: str, pool: set[str]) -> bool:
    """`text` is 2 or 3 sentences of `pool` joined by single spaces."""
    words = text.split(" ")
    for i in range(1, len(words)):
        head = " ".join(words[:i])
        if head not in pool:
            continue
        rest = words[i:]
        if " ".join(rest) in pool:
            return True
        if any(" ".join(rest[:j]) in pool and " ".join(rest[j:]) in pool
               for j in range(1, len(rest))):
            return True
    return False


@pytest.fixture(scope="module")
def corpus(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scale") / "corpus"
    build_corpus(CorpusSpec("sst2", ROWS, seed=7, days=3), shared_datasets, folder)
    return folder


def test_rows_are_distinct_recombinations_of_their_own_label(corpus: Path,
                                                             shared_datasets: Path) -> None:
    manifest = json.loads((corpus / "corpus_manifest.json").read_text())
    base = _texts(corpus / "inputs" / "base" / "train.parquet")
    nightly = _texts(corpus / "inputs" / "nightly" / "train.parquet")
    assert len(base) == ROWS and manifest["extra_rows"] == 30
    assert nightly[:ROWS] == base and len(nightly) == ROWS + 30
    assert [f["rows"] for f in manifest["files"]["days"]] == [1000, 1000, 1000]
    assert sum(_texts(Path(f["path"])) == base[i * 1000:(i + 1) * 1000]
               for i, f in enumerate(manifest["files"]["days"])) == 3
    assert len({row["text"] for row in nightly}) == len(nightly)
    source = get_dataset("sst2").train.file
    pools = {label: set(texts) for label, texts in
             sentence_pools(shared_datasets / source.path, source).items()}
    assert all(_joins(row["text"], pools[row["label"]]) for row in nightly)
    share = manifest["label_rows"]["1"] / ROWS  # the source's proportion of positives
    assert abs(share - len(pools["1"]) / (len(pools["0"]) + len(pools["1"]))) < 0.001


def test_seeded_and_eval_file_unchanged(corpus: Path, shared_datasets: Path,
                                        tmp_path: Path) -> None:
    manifest = json.loads((corpus / "corpus_manifest.json").read_text())
    same = build_corpus(CorpusSpec("sst2", ROWS, seed=7, days=3), shared_datasets, tmp_path / "a")
    other = build_corpus(CorpusSpec("sst2", ROWS, seed=8, days=3), shared_datasets,
                         tmp_path / "b")
    digests = [f["sha256"] for f in manifest["files"]["days"]]
    assert [f["sha256"] for f in same["files"]["days"]] == digests
    assert [f["sha256"] for f in other["files"]["days"]] != digests
    for name in ("base", "nightly"):
        copied = corpus / "inputs" / name / "sst2_glue" / "dev.tsv"
        assert sha256_of(copied) == sha256_of(shared_datasets / "sst2_glue" / "dev.tsv")


def test_the_scale_config_ingests_the_corpus(corpus: Path, tmp_path: Path) -> None:
    from distill_core.artifacts.store import RunStore
    from distill_core.config import load_config
    from distill_core.pipeline.order import run_pipeline
    from distill_core.pipeline.stage import StageContext
    from tasks.executors import make_executor

    manifest = json.loads((corpus / "corpus_manifest.json").read_text())
    cfg = load_config(ROOT / "configs" / "scale-static.yaml",
                      [f"data.data_dir={corpus / 'inputs' / 'nightly'}"])
    for split in ("train", "eval"):  # the shipped config reads what the builder wrote
        assert getattr(cfg.data, split) == SplitSource(**manifest["data"][split])
    assert cfg.data.label_names == manifest["data"]["label_names"]
    store = RunStore(tmp_path / "runs", cfg.run_id())
    run_pipeline(StageContext(cfg, store, make_executor(cfg.compute)), until="ingest")
    counts = store.manifest("ingest")["counts"]
    assert counts["rows_rejected"] == 0
    assert counts["rows_by_split"] == {"train": ROWS + 30, "eval": 872}


def test_the_nightly_run_reads_a_grown_folder_and_reuses_the_old_days(
        corpus: Path, tmp_path: Path) -> None:
    """bench_scale's runs read `live/days` (the daily files); the nightly run adds day-new
    there, and its ingest parses only that file, giving the rows of the concatenated file."""
    from benchmarks.bench_scale import live_folder, write_config
    from benchmarks.scale_corpus import link_file
    from distill_core.artifacts.store import RunStore
    from distill_core.config import load_config
    from distill_core.pipeline.order import run_pipeline
    from distill_core.pipeline.stage import StageContext
    from tasks.executors import make_executor

    manifest = json.loads((corpus / "corpus_manifest.json").read_text())
    live = live_folder(corpus, manifest)
    config = write_config(ROOT / "configs" / "scale-static.yaml", manifest,
                          tmp_path / "cfg.yaml")

    def ingest() -> dict:
        cfg = load_config(config, [f"data.data_dir={live}"])
        store = RunStore(tmp_path / "runs", cfg.run_id())
        run_pipeline(StageContext(cfg, store, make_executor(cfg.compute)), until="ingest")
        return store.manifest("ingest") | {"ids": store.read("ingest", columns=["example_id"])
                                              .column("example_id").to_pylist()}

    first = ingest()
    assert (first["files_reused"], first["files_parsed"]) == (0, 3)
    link_file(Path(manifest["files"]["new"]["path"]), live / "days" / "day-new.parquet")
    nightly = ingest()
    assert (nightly["files_reused"], nightly["files_parsed"]) == (3, 1)
    assert (nightly["rows_reused"], nightly["rows_parsed"]) == (ROWS, 30)
    train = pq.read_table(corpus / "inputs" / "nightly" / "train.parquet")
    assert nightly["counts"]["rows_by_split"]["train"] == train.num_rows == ROWS + 30
    assert nightly["ids"][:ROWS] == first["ids"][:ROWS]  # the old days' rows, in order
