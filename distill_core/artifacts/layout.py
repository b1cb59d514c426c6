"""How a stage's Parquet parts are laid out: per-column compression and row-group size.

Float vector columns (embeddings, soft labels) are written uncompressed, plain, without
statistics (`writer_options`): float32 vectors do not compress, and snappy on them halves
the read speed (a 200k x 256 part: 0.64 s read with snappy against 0.33 s without); the
stages in `PACKED_STAGES` also pack them as binary (`vector_storage`). A table with vector
columns gets row groups of about `ROW_GROUP_BYTES` of vectors, so a reader that wants a few
rows by position (`pipeline.batches.rows_at`) decodes 16 MiB per wanted row at most, not a
65,536-row batch of vectors (256 MiB at 1,024 dimensions). Smaller groups would cost writes:
Parquet writes a fixed-size list column group by group, 1.8x slower at 4 MiB groups than at
64 MiB, 1.1x at 16 MiB (200k x 256 here). Other tables get row groups of `TABLE_GROUP_ROWS`
rows (ingest's batch). Either way a group has a fixed number of rows, whatever batches were
written, so a part's bytes depend only on its rows (`StageWriter`).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

ROW_GROUP_BYTES = 16 << 20  # vector bytes per row group
MIN_GROUP_ROWS, MAX_GROUP_ROWS = 1_024, 65_536
TABLE_GROUP_ROWS = 32_768  # rows per row group of a table without vectors
# Stages with one row per corpus row, whose vectors every later stage reads (often several
# times), write them packed as fixed-size binary (`vector_storage`: 5x faster to read).
# Other stages' vectors are few and stay fixed-size lists, which any Parquet reader takes.
PACKED_STAGES = ("signals", "teacher")


def packs_vectors(stage: str) -> bool:
    """Whether `stage` writes its vector columns packed (`vector_storage.pack_table`)."""
    return stage in PACKED_STAGES


def is_vector(field: pa.Field) -> bool:
    """A fixed-size list of floats: one vector per row."""
    return (pa.types.is_fixed_size_list(field.type)
            and pa.types.is_floating(field.type.value_type))


def compression(schema: pa.Schema) -> dict[str, str]:
    """Parquet compression per column: none for vectors, snappy (Parquet's usual) for the
    rest."""
    return {field.name: "none" if is_vector(field) else "snappy" for field in schema}


def writer_options(schema: pa.Schema) -> dict[str, Any]:
    """`pq.ParquetWriter`'s options for tables of `schema`: `compression`, and no dictionary
    encoding or min/max statistics for vectors. Parquet tries a dictionary for every column
    first and falls back to plain values once it outgrows its page, so each vector column
    chunk began with a dictionary-encoded megabyte that readers decode value by value; and
    the statistics of a vector's floats serve no reader (nothing filters on them)
    (`benchmarks/bench_vector_layout.py`)."""
    scalars = [field.name for field in schema if not is_vector(field)]
    return {"compression": compression(schema), "use_dictionary": scalars,
            "write_statistics": scalars}


def group_rows(schema: pa.Schema) -> int:
    """Rows per row group for tables of `schema`: about `ROW_GROUP_BYTES` of vectors, within
    [MIN_GROUP_ROWS, MAX_GROUP_ROWS]; `TABLE_GROUP_ROWS` without vectors."""
    width = sum(field.type.list_size * field.type.value_type.bit_width // 8
                for field in schema if is_vector(field))
    if not width:
        return TABLE_GROUP_ROWS
    return max(MIN_GROUP_ROWS, min(MAX_GROUP_ROWS, ROW_GROUP_BYTES // width))
