"""How a stage's Parquet parts are laid out: per-column compression and row-group size.

Float vector columns (embeddings, soft labels) are written uncompressed: float32 vectors do
not compress, and snappy on them halves the read speed (a 200k x 256 part: 0.64 s read
with snappy against 0.33 s without). A table with vector columns gets row groups of about
`ROW_GROUP_BYTES` of vectors, so a reader that wants a few rows by position
(`pipeline.batches.rows_at`) decodes 16 MiB per wanted row at most, not a 65,536-row batch
of vectors (256 MiB at 1,024 dimensions). Smaller groups would cost writes: Parquet writes
a fixed-size list column group by group, 1.8x slower at 4 MiB groups than at 64 MiB, 1.1x
at 16 MiB (200k x 256 here). Other tables get row groups of `TABLE_GROUP_ROWS` rows (ingest's
batch). Either way a group has a fixed number of rows, whatever batches were written, so a
part's bytes depend only on its rows (`StageWriter`).
"""

from __future__ import annotations

import pyarrow as pa

ROW_GROUP_BYTES = 16 << 20  # vector bytes per row group
MIN_GROUP_ROWS, MAX_GROUP_ROWS = 1_024, 65_536
TABLE_GROUP_ROWS = 32_768  # rows per row group of a table without vectors


def is_vector(field: pa.Field) -> bool:
    """A fixed-size list of floats: one vector per row."""
    return (pa.types.is_fixed_size_list(field.type)
            and pa.types.is_floating(field.type.value_type))


def compression(schema: pa.Schema) -> dict[str, str]:
    """Parquet compression per column: none for vectors, snappy (Parquet's usual) for the
    rest."""
    return {field.name: "none" if is_vector(field) else "snappy" for field in schema}


def group_rows(schema: pa.Schema) -> int:
    """Rows per row group for tables of `schema`: about `ROW_GROUP_BYTES` of vectors, within
    [MIN_GROUP_ROWS, MAX_GROUP_ROWS]; `TABLE_GROUP_ROWS` without vectors."""
    width = sum(field.type.list_size * field.type.value_type.bit_width // 8
                for field in schema if is_vector(field))
    if not width:
        return TABLE_GROUP_ROWS
    return max(MIN_GROUP_ROWS, min(MAX_GROUP_ROWS, ROW_GROUP_BYTES // width))
