"""Packed vector columns: the bits and Arrow types written come back on every read path, a
reader outside textdistill gets each row's floats from the binary, and parts written before
packing (fixed-size lists) read as they did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_core.artifacts.store import RunStore, part_file, read_part
from distill_core.artifacts.vector_storage import (
    PACKED_KEY,
    pack_table,
    packed_schema,
    unpack_table,
)
from distill_core.pipeline.batches import rows_at, stage_batches
from distill_core.signals.embeddings import matrix, vectors_array


def _vectors(rows: int, dim: int, dtype: type = np.float32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(dtype)


@pytest.mark.parametrize("value_type", [pa.float16(), pa.float32(), pa.float64()])
def test_pack_and_unpack_keep_type_bits_nulls_and_slices(value_type: pa.DataType) -> None:
    x = _vectors(50, 6, value_type.to_pandas_dtype())
    column = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), value_type), 6,
                                               mask=pa.array([i % 7 == 3 for i in range(50)]))
    table = pa.table({"id": pa.array(range(50)), "v": column}).slice(5, 40)  # an offset
    packed = pack_table(table)
    assert packed.schema.field("v").type == pa.binary(6 * value_type.bit_width // 8)
    assert packed.schema.field("v").metadata[PACKED_KEY] == f"float{value_type.bit_width}".encode()
    assert packed.column("v").null_count == table.column("v").null_count == 5
    back = unpack_table(packed)
    assert back.schema.equals(table.schema)
    assert back.column("v").to_pylist() == table.column("v").to_pylist()  # nulls in place
    valid = np.asarray(table.column("v").is_valid())
    got = matrix(back.filter(pa.array(valid)), "v")
    assert np.array_equal(got.view(np.uint8), x[5:45][valid].view(np.uint8))  # bit for bit


def test_a_record_batch_and_a_table_without_vectors_pass_through() -> None:
    batch = pa.RecordBatch.from_arrays([vectors_array(_vectors(4, 3))], names=["e"])
    assert unpack_table(pack_table(batch)).equals(batch)
    plain = pa.table({"text": ["a", "b"], "soft": pa.array([[0.1], [0.9, 0.1]],
                                                            pa.list_(pa.float32()))})
    assert pack_table(plain) is plain and unpack_table(plain) is plain
    assert packed_schema(plain.schema).equals(plain.schema)


def test_a_vector_with_a_missing_element_is_refused() -> None:
    holes = pa.FixedSizeListArray.from_arrays(pa.array([1.0, None, 3.0, 4.0], pa.float32()), 2)
    with pytest.raises(ValueError, match="'e': a vector has a missing element"):
        pack_table(pa.table({"e": holes}))


def _signals(store: RunStore, x: np.ndarray) -> None:
    writer = store.stage_writer("signals")
    for start in range(0, len(x), 300):
        stop = min(start + 300, len(x))
        writer.write(pa.table({"example_id": [f"r{i}" for i in range(start, stop)],
                               "embedding": vectors_array(x[start:stop])}))
    writer.publish({"stage": "signals"})


def test_every_read_path_unpacks_a_packed_stage(tmp_path: Path) -> None:
    x = _vectors(1_000, 16)
    store = RunStore(tmp_path, "run")
    _signals(store, x)
    part = store.parts("signals")[0]
    outside = pq.read_table(part)  # any Parquet reader: one binary value a row
    assert outside.schema.field("embedding").type == pa.binary(64)
    first = outside.column("embedding")[0].as_py()
    assert np.array_equal(np.frombuffer(first, "<f4"), x[0])
    assert np.array_equal(matrix(store.read("signals")), x)
    assert np.array_equal(matrix(read_part(part, ["embedding"])), x)
    handle = part_file(part)
    assert handle.schema_arrow.field("embedding").type == pa.list_(pa.float32(), 16)
    assert np.array_equal(matrix(handle.read_row_group(0, columns=["embedding"])),
                          x[:handle.metadata.row_group(0).num_rows])
    batches = [matrix(b) for b in stage_batches(store, "signals", ["embedding"], 256)]
    assert np.array_equal(np.concatenate(batches), x)
    picked, total = rows_at(store, "signals", np.array([0, 299, 300, 999]), ["embedding"])
    assert total == 1_000 and np.array_equal(matrix(picked), x[[0, 299, 300, 999]])


def test_a_part_written_as_lists_reads_as_before(tmp_path: Path) -> None:
    x = _vectors(200, 8)
    store = RunStore(tmp_path, "run")
    _signals(store, x)
    part = store.parts("signals")[0]
    listed = pa.table({"example_id": [f"r{i}" for i in range(200)],
                       "embedding": vectors_array(x)})
    pq.write_table(listed, part)  # an earlier version's part (the manifest is not checked here)
    assert part_file(part).schema_arrow.equals(listed.schema)
    assert np.array_equal(matrix(read_part(part)), x)
