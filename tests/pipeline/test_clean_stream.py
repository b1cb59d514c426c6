"""The clean stage batch by batch keeps exactly what filtering the whole corpus keeps."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from distill_core.config import load_config
from distill_core.filter import semantic as semantic_module
from distill_core.filter import semantic_spill
from distill_core.filter.base import FilterInput
from distill_core.filter.exact import SeenTexts
from distill_core.filter.pipeline import run_filters
from distill_core.filter.stage import clean_corpus
from distill_core.pipeline import clean_stream
from distill_core.pipeline.filter_context import StreamedFilterContext


def _rows(*texts: str) -> pa.Table:
    return pa.table({"example_id": [f"id{i}-{len(t)}" for i, t in enumerate(texts)],
                     "text": list(texts), "text_pair": pa.array([None] * len(texts),
                                                                pa.string()),
                     "label": ["a"] * len(texts), "label_id": [0] * len(texts)})


def test_exact_dedup_carries_what_it_saw_across_batches() -> None:
    cfg = load_config(None, ["filter.contamination.enabled=false"]).filter
    first = FilterInput(_rows("A fine film .", "dull"), np.zeros(2, np.int64))
    second = FilterInput(_rows("a  FINE film .", "new"), np.zeros(2, np.int64))
    seen = SeenTexts()
    assert run_filters(first, cfg, seen).drops == []
    drops = run_filters(second, cfg, seen).drops
    assert [(d.row, d.reason) for d in drops] == [(0, "exact_duplicate")]
    assert drops[0].detail == "same normalised text as id0-13"
    assert run_filters(second, cfg).drops == []  # without `seen`, each input on its own


@pytest.fixture()
def planted(slice_dir: Path, tmp_path: Path) -> Path:
    """The SST-2 slice with planted rows: the first training sentence again at the end under
    the other label and in capitals (an exact duplicate 300 rows and several batches after
    its first), the longest training sentence again with one more word (a near duplicate,
    as far), an evaluation sentence copied into the training file (contamination), and the
    longest sentence again with a word inserted after every fourth (a semantic duplicate that
    near dedup does not find)."""
    folder = tmp_path / "data"
    shutil.copytree(slice_dir / "sst2_glue", folder / "sst2_glue")
    train = folder / "sst2_glue" / "train.tsv"
    lines = train.read_text().splitlines()
    first, label = lines[1].rsplit("\t", 1)
    dev = (folder / "sst2_glue" / "dev.tsv").read_text().splitlines()[3]
    longest = max(lines[1:], key=lambda line: len(line.rsplit("\t", 1)[0].split()))
    text, long_label = longest.rsplit("\t", 1)
    reworded = " ".join(w + (" truly" if i % 4 == 3 else "")
                        for i, w in enumerate(text.split()))
    lines += [f"{first.upper()}\t{1 - int(label)}", f"{text} indeed\t{long_label}", dev,
              f"{reworded}\t{long_label}"]
    train.write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("near, semantic", [(False, False), (True, False), (False, True),
                                            (True, True)])
def test_streamed_clean_equals_the_whole_corpus_filtered(planted: Path, tmp_path: Path,
                                                         run_stages, monkeypatch,
                                                         near: bool, semantic: bool) -> None:
    monkeypatch.setattr(clean_stream, "ROWS_PER_BATCH", 64)
    # Semantic dedup's coarse centroids fitted on a sample, its rows assigned in several
    # chunks and compared from several coarse clusters' files: each the same in memory and
    # spilled.
    monkeypatch.setattr(semantic_module, "COARSE_ROWS", 50)
    monkeypatch.setattr(semantic_module, "FIT_ROWS", 150)
    monkeypatch.setattr(semantic_module, "ASSIGN_CELLS", 120)
    monkeypatch.setattr(semantic_spill, "READ_ROWS", 50)
    cfg = load_config(None, [f"data.data_dir={planted}", "run.seeds=[0]", "run.name=stream",
                             "filter.corpus=true", "filter.teacher_consistency.enabled=true",
                             "filter.teacher_consistency.tau=0.6",
                             "filter.quality.enabled=true", "filter.quality.min_words=3",
                             f"filter.near_dedup.enabled={str(near).lower()}",
                             f"filter.semantic_dedup.enabled={str(semantic).lower()}",
                             "filter.semantic_dedup.epsilon=0.8",
                             "filter.semantic_dedup.cluster_size=20"])
    store, _ = run_stages(cfg, tmp_path / "runs", "clean")
    manifest = store.manifest("clean")
    assert manifest["streamed"] is True
    corpus = store.read("ingest")
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    assert train.num_rows > 4 * 64  # several batches
    whole = clean_corpus(train, cfg.filter, StreamedFilterContext(store, True))

    kept = store.read("clean")
    assert kept.column("example_id").to_pylist() == whole.kept.column("example_id").to_pylist()
    assert kept.equals(whole.kept)
    rejects = store.read("clean", rejects=True)

    def drops(table: pa.Table) -> set[tuple]:
        return {(r["example_id"], r["reason"], r["detail"], r["field"]) for r in
                table.to_pylist()}

    assert drops(rejects) == drops(whole.rejects)
    assert manifest["filters"] == whole.per_filter
    assert manifest["counts"]["rows_in"] == train.num_rows == kept.num_rows + rejects.num_rows
    reasons = manifest["counts"]["rejects_by_reason"]
    for reason in ("exact_duplicate", "contaminated_ngram", "teacher_inconsistent",
                   "too_short"):
        assert reasons.get(reason, 0) > 0, reason
    planted_copy = [r for r in rejects.to_pylist() if r["reason"] == "exact_duplicate"]
    assert any(r["detail"] == f"same normalised text as {train.column('example_id')[0]}"
               for r in planted_copy)
    near_copies = [r for r in rejects.to_pylist() if r["reason"] == "near_duplicate"]
    semantic_copies = [r for r in rejects.to_pylist() if r["reason"] == "semantic_duplicate"]
    texts = train.column("text").to_pylist()
    longest = max(range(len(texts) - 4), key=lambda i: len(texts[i].split()))
    ids = train.column("example_id").to_pylist()
    original, copy, reworded = ids[longest], ids[-3], ids[-1]
    if near:  # the longest sentence's copy, hundreds of rows (several batches) later
        assert any(r["example_id"] == copy and r["detail"].endswith(f"with {original}")
                   for r in near_copies)
    else:
        assert not near_copies
    if semantic:  # the three versions of the longest sentence keep one
        within = [r for r in semantic_copies if {r["example_id"], r["detail"].rsplit(" ", 1)[1]}
                  <= {original, copy, reworded}]
        assert len(within) == (1 if near else 2)
        assert manifest["filters"][-1]["filter"] == "semantic_dedup"
    else:
        assert not semantic_copies
    assert not any(p.name.startswith(".clean-spill") for p in store.root.iterdir())


def test_a_streamed_clean_that_drops_nothing_has_an_empty_rejects_table(
        slice_dir: Path, tmp_path: Path, run_stages) -> None:
    cfg = load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0]", "run.name=none",
                             "filter.corpus=true", "filter.exact_dedup=false",
                             "filter.contamination.enabled=false"])
    store, _ = run_stages(cfg, tmp_path / "runs", "clean")
    assert store.manifest("clean")["streamed"] is True
    assert store.read("clean", rejects=True).num_rows == 0
    assert store.read("clean").num_rows == store.manifest("ingest")["counts"][
        "rows_by_split"]["train"]


