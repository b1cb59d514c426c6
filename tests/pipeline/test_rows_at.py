"""Positional reads of a stage: `rows_at` returns exactly the asked-for rows, in order, and
decodes only the row groups that hold them; vector stages are laid out for it (small row
groups, vectors uncompressed), other stages are not. Groups have fixed sizes, so a part's
bytes follow its rows, not the batches they were written in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_core.artifacts import layout
from distill_core.artifacts.store import RunStore
from distill_core.pipeline.batches import rows_at, verified_parts
from distill_core.signals.embeddings import matrix, vectors_array

DIM, ROWS = 1024, 9_000  # 4 KiB of vector a row: 1,024-row groups at 4 MiB a group


@pytest.fixture(autouse=True)
def four_mib_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """4 MiB groups, so small test tables span several (the default is 16 MiB)."""
    monkeypatch.setattr(layout, "ROW_GROUP_BYTES", 4 << 20)


def _stage(store: RunStore, stage: str, with_vectors: bool) -> np.ndarray:
    """Write `ROWS` rows in batches of 2,500 (one part; a group ends where a batch does)."""
    x = np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)
    writer = store.stage_writer(stage)
    for start in range(0, ROWS, 2_500):
        end = min(start + 2_500, ROWS)
        columns = {"example_id": pa.array([f"e{i}" for i in range(start, end)])}
        if with_vectors:
            columns["embedding"] = vectors_array(x[start:end])
        writer.write(pa.table(columns))
    writer.publish({"stage": stage})
    return x


def _column_layout(meta: pq.FileMetaData) -> dict[str, tuple[str, bool, bool]]:
    """Per column path of a part's first row group: (codec, dictionary-encoded, statistics)."""
    out = {}
    for i in range(meta.num_columns):
        column = meta.row_group(0).column(i)
        out[column.path_in_schema] = (column.compression, any(
            "DICTIONARY" in e for e in column.encodings), column.statistics is not None)
    return out


def test_vector_stages_get_small_uncompressed_row_groups(tmp_path: Path) -> None:
    store = RunStore(tmp_path, "run")
    x = _stage(store, "signals", True)
    _stage(store, "ingest", False)
    _stage(store, "learn", True)
    vectors = pq.ParquetFile(verified_parts(store, "signals")[0]).metadata
    sizes = [vectors.row_group(g).num_rows for g in range(vectors.num_row_groups)]
    assert sizes == [1_024] * 8 + [808]  # fixed groups across the 2,500-row batches
    # signals packs its vectors as binary (one value a row), plain and without statistics
    assert _column_layout(vectors) == {"example_id": ("SNAPPY", True, True),
                                       "embedding": ("UNCOMPRESSED", False, False)}
    assert np.array_equal(matrix(store.read("signals")), x)
    # a stage that does not pack keeps a list column, laid out the same way
    listed = pq.ParquetFile(verified_parts(store, "learn")[0]).metadata
    assert _column_layout(listed) == {"example_id": ("SNAPPY", True, True),
                                      "embedding.list.element": ("UNCOMPRESSED", False, False)}
    assert np.array_equal(matrix(store.read("learn")), x)
    texts = pq.ParquetFile(verified_parts(store, "ingest")[0]).metadata
    assert texts.num_row_groups == 1 and texts.row_group(0).num_rows == ROWS  # 32,768-row groups
    assert layout.group_rows(pa.schema([("e", pa.list_(pa.float32(), 384))])) == 2_730
    assert layout.group_rows(pa.schema([("e", pa.list_(pa.float32(), 8))])) == 65_536


@pytest.mark.parametrize("positions", [[], [0], [1_023, 1_024, 2_499, 2_500, 8_999],
                                       list(range(0, ROWS, 7))])
def test_rows_at_returns_the_rows_asked_for(tmp_path: Path, positions: list[int]) -> None:
    store = RunStore(tmp_path, "run")
    x = _stage(store, "signals", True)
    at = np.asarray(positions, dtype=np.int64)
    table, total = rows_at(store, "signals", at, ["example_id", "embedding"])
    assert total == ROWS
    assert table.column("example_id").to_pylist() == [f"e{i}" for i in positions]
    assert np.array_equal(matrix(table), x[at]) and matrix(table).shape == (len(at), DIM)


def test_rows_at_reads_only_the_groups_holding_a_row(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = RunStore(tmp_path, "run")
    _stage(store, "signals", True)
    read: list[int] = []
    original = pq.ParquetFile.read_row_group

    def counted(self, group, *args, **kwargs):
        read.append(group)
        return original(self, group, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counted)
    rows_at(store, "signals", np.asarray([5, 10, 1_030]), ["example_id"])
    assert read == [0, 1]  # the two groups holding a row, none of the other nine
