"""One-pass near dedup: datasketch's signatures, the same drops batch by batch as on the
whole input, first occurrence kept, groups apart, kept rows spilled to disk and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill_core.filter.near_seen import NearSeen, signatures, word_shingles
from distill_core.ingest.normalize import normalize_text

BASE = "the film is a sweeping and moving portrait of a family torn apart by war and grief"


def test_signatures_are_datasketchs_legacy_minhash(shared_datasets: Path) -> None:
    from datasketch import MinHash

    lines = (shared_datasets / "sst2_glue" / "train.tsv").read_text().splitlines()[1:2001]
    texts = [normalize_text(line.rsplit("\t", 1)[0]) for line in lines] + ["", "one", "a b"]
    expected = np.stack([m.hashvalues for m in MinHash.bulk(
        [word_shingles(t, 3) for t in texts], num_perm=64, seed=7, scheme="legacy")])
    assert np.array_equal(signatures(texts, 3, 64, 7, chunk_rows=300), expected)


def _real_texts(shared_datasets: Path, rows: int) -> tuple[list[str], int]:
    """SST-2 training sentences after 40 long texts made of four consecutive sentences each;
    each long text planted again at the end with one more word (near duplicates several
    batches apart). Also the first planted row's position."""
    lines = (shared_datasets / "sst2_glue" / "train.tsv").read_text().splitlines()[1:rows + 1]
    texts = [normalize_text(line.rsplit("\t", 1)[0]) for line in lines]
    long = [" ".join(texts[i:i + 4]) for i in range(0, 160, 4)]
    return long + texts + [t + " indeed" for t in long], len(long) + len(texts)


@pytest.mark.parametrize("spill", [False, True])
def test_batch_by_batch_equals_the_whole_input(shared_datasets: Path, tmp_path: Path,
                                               spill: bool) -> None:
    texts, planted = _real_texts(shared_datasets, 3000)
    ids = [f"{i:016x}" for i in range(len(texts))]
    groups = np.zeros(len(texts), np.int64)
    whole = NearSeen(3, 128, 0.8, 1).check(texts, groups, ids)
    seen = NearSeen(3, 128, 0.8, 1, tmp_path / "spill" if spill else None)
    batched = []
    for start in range(0, len(texts), 500):
        batched += [(start + row, kept, j) for row, kept, j in seen.check(
            texts[start:start + 500], groups[start:start + 500], ids[start:start + 500])]
    assert batched == whole
    found = {row: kept for row, kept, _ in whole}
    # the planted copies, 3,000 rows after their originals, name them (LSH may miss a pair:
    # a short original's copy estimates lower)
    caught = {row - planted: kept for row, kept in found.items() if row >= planted}
    assert len(caught) >= 38 and all(kept == ids[i] for i, kept in caught.items())
    assert all(j >= 0.8 for _, _, j in whole)
    if spill:
        files = sorted(p.name for p in (tmp_path / "spill").iterdir())
        assert files[:2] == ["kept-000000.bin", "kept-000001.bin"]
        assert seen.kept.count == len(texts) - len(found)
        assert int(seen.kept.record(0)["group"]) == 0
        assert bytes(seen.kept.record(0)["id"]).decode() == ids[0]
        seen.close()


def test_first_occurrence_kept_and_a_row_near_only_a_dropped_row_kept() -> None:
    words = ("the film is a sweeping and moving portrait of a family torn apart by war and "
             "grief while the city burns around them and nobody in the house can quite say "
             "what they have lost or why it matters now").split()
    a = " ".join(words)
    b = " ".join(["this"] + words[1:-2] + ["still", "today"])  # near a
    c_words = b.split()
    c_words[2], c_words[5] = "x0", "x1"
    c = " ".join(c_words)  # near b, not near a
    sigs = signatures([a, b, c], 3, 128, 1)
    jac = {(i, j): float((sigs[i] == sigs[j]).mean()) for i, j in ((0, 1), (1, 2), (0, 2))}
    assert jac[(0, 1)] >= 0.7 and jac[(1, 2)] >= 0.7 > jac[(0, 2)]
    zeros = np.zeros(3, np.int64)
    # b and c alone: c is b's near duplicate (LSH pairs them)
    assert [r for r, _, _ in NearSeen(3, 128, 0.7, 1).check([b, c], zeros[:2],
                                                              ["idb", "idc"])] == [1]
    drops = NearSeen(3, 128, 0.7, 1).check([a, b, c], zeros, ["ida", "idb", "idc"])
    assert [(row, kept) for row, kept, _ in drops] == [(1, "ida")]  # c resembles only b


def test_groups_are_deduplicated_apart() -> None:
    texts = [BASE, BASE + " !", BASE + " ?"]
    drops = NearSeen(3, 128, 0.8, 1).check(texts, np.array(["x", "y", "x"]),
                                           ["id0", "id1", "id2"])
    assert [(row, kept) for row, kept, _ in drops] == [(2, "id0")]
