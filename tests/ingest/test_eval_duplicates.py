"""The evaluation split is kept as given: a repeated evaluation row stays (and is counted), while
training rows are still deduplicated and unreadable evaluation rows still rejected."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from distill_core.ingest import ingest_dataset, resolve_dataset


def duplicated_sst2(slice_dir: Path, target: Path) -> Path:
    """The SST-2 slices with the first data row of each split repeated at its end, and a
    malformed row added to the evaluation split."""
    folder = target / "sst2_glue"
    folder.mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv"):
        lines = (slice_dir / "sst2_glue" / name).read_bytes().splitlines(keepends=True)
        extra = [lines[1]] + ([b"too\tmany\tfields\n"] if name == "dev.tsv" else [])
        (folder / name).write_bytes(b"".join(lines + extra))
    return target


def test_eval_keeps_a_repeated_row_and_train_still_dedups(slice_dir: Path,
                                                          tmp_path: Path) -> None:
    data = duplicated_sst2(slice_dir, tmp_path)
    result = ingest_dataset(resolve_dataset("sst2"), data)
    evaluation = result.corpus.filter(pc.equal(result.corpus.column("split"), "eval"))
    train = result.corpus.filter(pc.equal(result.corpus.column("split"), "train"))
    dev_rows = len((data / "sst2_glue" / "dev.tsv").read_bytes().splitlines()) - 1
    assert evaluation.num_rows == dev_rows - 1  # all but the malformed row, repeat included
    eval_ids = evaluation.column("example_id").to_pylist()
    assert eval_ids[0] == eval_ids[-1] and len(set(eval_ids)) == evaluation.num_rows - 1
    assert evaluation.column("source_row").to_pylist()[-1] == dev_rows  # the repeat itself
    assert result.eval_duplicates == 1
    rejects = result.rejects.to_pylist()
    assert [(r["split"], r["reason"]) for r in rejects] == [
        ("train", "duplicate_example"), ("eval", "malformed_row")]
    train_ids = train.column("example_id").to_pylist()
    assert len(set(train_ids)) == len(train_ids)
    assert result.rows_in == result.corpus.num_rows + result.rejects.num_rows
    stats = {s["split"]: s for s in result.sources}
    assert stats["eval"]["duplicates_kept"] == 1 and stats["train"]["duplicates_kept"] == 0


def test_unchanged_eval_split_has_no_duplicates_to_report(slice_dir: Path) -> None:
    result = ingest_dataset(resolve_dataset("sst2"), slice_dir)
    assert result.eval_duplicates == 0
