"""Vector columns packed as fixed-size binary on disk, unpacked to fixed-size lists on read.

Parquet stores a fixed-size list of floats as a nested column: one definition and one
repetition level per float, which every reader decodes value by value. The same floats as
one fixed-size binary value per row have a single definition level per row, and their bytes
are copied as they are: reading 200k x 256 float32 vectors took 0.40-0.45 s as lists and
0.07-0.09 s as binary here, one thread (`benchmarks/bench_vector_layout.py` times the
stage's own reads). A packed column keeps what it was in its field's metadata (`PACKED_KEY`:
`float32`, `float16` or `float64`), so `unpack_table` gives back the very Arrow type and
bits that were written; a column without that key is left as it is, so parts written before
packing read the same. Which stages pack is `layout.packs_vectors`'s choice.

A reader outside textdistill sees a packed column as binary: `np.frombuffer(value, "<f4")`
(or `unpack_table` on the Arrow table) gives a row's vector.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distill_core.artifacts.layout import is_vector

PACKED_KEY = b"textdistill.packed_vector"  # field metadata: the float type of a packed column
_FLOATS = {f"float{t.bit_width}": t for t in (pa.float16(), pa.float32(), pa.float64())}

Data = TypeVar("Data", pa.Table, pa.RecordBatch)


def _packed_field(field: pa.Field) -> pa.Field:
    value_type = field.type.value_type
    width = field.type.list_size * value_type.bit_width // 8
    metadata = {**(field.metadata or {}), PACKED_KEY: f"float{value_type.bit_width}".encode()}
    return pa.field(field.name, pa.binary(width), field.nullable, metadata)


def _unpacked_field(field: pa.Field) -> pa.Field:
    value_type = _FLOATS[field.metadata[PACKED_KEY].decode()]
    size = field.type.byte_width * 8 // value_type.bit_width
    metadata = {k: v for k, v in field.metadata.items() if k != PACKED_KEY} or None
    return pa.field(field.name, pa.list_(value_type, size), field.nullable, metadata)


def is_packed(field: pa.Field) -> bool:
    """A column written by `pack_table`."""
    return field.metadata is not None and PACKED_KEY in field.metadata


def packed_schema(schema: pa.Schema) -> pa.Schema:
    """The on-disk schema of `pack_table(table)` for a table of `schema`."""
    return pa.schema([_packed_field(f) if is_vector(f) else f for f in schema],
                     metadata=schema.metadata)


def unpacked_schema(schema: pa.Schema) -> pa.Schema:
    """The schema `unpack_table` gives for data of the on-disk `schema`."""
    return pa.schema([_unpacked_field(f) if is_packed(f) else f for f in schema],
                     metadata=schema.metadata)


def _pack(array: pa.FixedSizeListArray, field: pa.Field) -> pa.Array:
    """One chunk of vectors as fixed-size binary: its floats' bytes, row by row (no copy
    when the chunk is not sliced)."""
    size = array.type.list_size
    values = array.values.slice(array.offset * size, len(array) * size)
    if values.null_count:
        raise ValueError(f"column {field.name!r}: a vector has a missing element; vectors "
                         "are packed whole")
    data = pa.py_buffer(np.ascontiguousarray(values.to_numpy(zero_copy_only=False)))
    packed = pa.Array.from_buffers(field.type, len(array), [None, data])
    if array.null_count:
        packed = pc.if_else(array.is_valid(), packed, pa.scalar(None, field.type))
    return packed


def _unpack(array: pa.FixedSizeBinaryArray, field: pa.Field) -> pa.FixedSizeListArray:
    """One chunk of packed vectors as fixed-size lists (no copy of the floats)."""
    size, value_type = field.type.list_size, field.type.value_type
    width = array.type.byte_width
    data = array.buffers()[1].slice(array.offset * width, len(array) * width)
    values = pa.Array.from_buffers(value_type, len(array) * size, [None, data])
    mask = array.is_null() if array.null_count else None
    return pa.FixedSizeListArray.from_arrays(values, size, mask=mask)


def _convert(data: Data, schema: pa.Schema,
             convert: Callable[[pa.Array, pa.Field], pa.Array]) -> Data:
    """`data` with each column whose type `schema` changes converted chunk by chunk."""
    columns = []
    for field, new, column in zip(data.schema, schema, data.columns, strict=True):
        if field.type == new.type:
            columns.append(column)
        elif isinstance(column, pa.ChunkedArray):
            columns.append(pa.chunked_array([convert(c, new) for c in column.chunks], new.type))
        else:
            columns.append(convert(column, new))
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(columns, schema=schema)
    return pa.Table.from_arrays(columns, schema=schema)


def pack_table(table: Data) -> Data:
    """`table` with its float vector columns packed (`packed_schema`)."""
    schema = packed_schema(table.schema)
    return table if schema.equals(table.schema) else _convert(table, schema, _pack)


def unpack_table(data: Data) -> Data:
    """`data` read from disk with its packed columns back as fixed-size lists of floats."""
    if not any(is_packed(f) for f in data.schema):
        return data
    return _convert(data, unpacked_schema(data.schema), _unpack)


class PartFile(pq.ParquetFile):
    """A Parquet part whose reads (and `schema_arrow`) give packed columns unpacked."""

    @property
    def schema_arrow(self) -> pa.Schema:
        return unpacked_schema(super().schema_arrow)

    def read_row_group(self, i, columns=None, use_threads=True,  # type: ignore[no-untyped-def]
                       use_pandas_metadata=False):
        return unpack_table(super().read_row_group(i, columns, use_threads,
                                                   use_pandas_metadata))

    def read_row_groups(self, row_groups, columns=None,  # type: ignore[no-untyped-def]
                        use_threads=True, use_pandas_metadata=False):
        return unpack_table(super().read_row_groups(row_groups, columns, use_threads,
                                                    use_pandas_metadata))

    def read(self, columns=None, use_threads=True,  # type: ignore[no-untyped-def]
             use_pandas_metadata=False):
        return unpack_table(super().read(columns, use_threads, use_pandas_metadata))

    def iter_batches(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for batch in super().iter_batches(*args, **kwargs):
            yield unpack_table(batch)
