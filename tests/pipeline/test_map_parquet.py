"""`LocalExecutor.map_parquet`: the actor sees the parts' rows (asked-for columns only) in
blocks of at most `block_rows`, and the blocks come back in read order across parts and row
groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distill_core.pipeline.executor import ActorSpec, LocalExecutor, Resources


class Doubler:
    """Doubles `n`, passes `id` through, and says which columns it was given."""

    where = "local"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"id": batch["id"], "twice": batch["n"] * 2,
                "seen": np.full(len(batch["n"]), ",".join(sorted(batch)))}


def test_map_parquet_reads_the_parts_in_order_in_blocks(tmp_path: Path) -> None:
    parts = []
    for index, rows in enumerate((range(0, 7), range(7, 20))):
        path = tmp_path / f"part-{index}.parquet"
        pq.write_table(pa.table({"id": [f"r{i}" for i in rows], "n": list(rows),
                                 "text": ["x"] * len(rows)}), path, row_group_size=4)
        parts.append(path)
    blocks = list(LocalExecutor().map_parquet(ActorSpec(Doubler, {}, "test"), parts,
                                              ["id", "n"], Resources(), block_rows=3))
    assert all(len(b.columns["id"]) <= 3 for b in blocks)
    ids = np.concatenate([b.columns["id"] for b in blocks]).tolist()
    assert ids == [f"r{i}" for i in range(20)]
    assert np.concatenate([b.columns["twice"] for b in blocks]).tolist() == \
        [2 * i for i in range(20)]
    assert {s for b in blocks for s in b.columns["seen"]} == {"id,n"}  # no `text`
    assert sum(b.workers["local"] for b in blocks) == 20
