"""Arrow schemas shared by every stage, so DuckDB can union their tables.

Every row of every artifact carries `example_id`. A rejects table has the same
columns at every stage: which row, from where, why (`reason`, a stable
snake_case code) and the details a person needs to fix it.
"""

from __future__ import annotations

import pyarrow as pa

CORPUS_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("split", pa.string()),
        ("text", pa.string()),
        ("text_pair", pa.string()),
        ("label", pa.string()),
        ("label_id", pa.int32()),
        ("source", pa.string()),
        ("source_row", pa.int64()),
    ]
)

SELECTION_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("replicate", pa.int32()),
        ("text", pa.string()),
        ("text_pair", pa.string()),
        ("label", pa.string()),
        ("label_id", pa.int32()),
        ("parent_ids", pa.list_(pa.string())),
        ("method", pa.string()),
        ("run_id", pa.string()),
        ("seed", pa.int64()),
        ("rank", pa.int32()),
        ("score", pa.float64()),
        ("weight", pa.float64()),
        ("soft_label", pa.list_(pa.float32())),
    ]
)

REJECTS_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("replicate", pa.int32()),
        ("split", pa.string()),
        ("source", pa.string()),
        ("source_row", pa.int64()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
    ]
)


def rejects_table(rows: list[dict]) -> pa.Table:
    """A rejects table from dicts; absent keys become nulls."""
    columns = {name: [row.get(name) for row in rows] for name in REJECTS_SCHEMA.names}
    return pa.table(columns, schema=REJECTS_SCHEMA)
