"""Generation parts in the runs folder's cache: reused only while their bytes are what was
written; a damaged or unrecorded part is generated again."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from distill_core.generate.shards import (
    PromptShard,
    part_path,
    pending_shards,
    read_parts,
    record_path,
    write_part,
)


def _shards(n: int) -> list[PromptShard]:
    return [PromptShard(i, (f"p{i}",), (f"prompt {i}",), 1) for i in range(n)]


def test_only_intact_recorded_parts_count_as_done(tmp_path: Path) -> None:
    shards = _shards(4)
    for shard in shards[:3]:
        write_part(tmp_path, shard.shard, pa.table({"shard": [shard.shard], "text": ["x"]}))
    assert [s.shard for s in pending_shards(tmp_path, shards)] == [3]
    # Part 0 changed after it was written (same size), part 1 lost its record.
    part0 = part_path(tmp_path, 0)
    data = bytearray(part0.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part0.write_bytes(bytes(data))
    record_path(part_path(tmp_path, 1)).unlink()
    assert [s.shard for s in pending_shards(tmp_path, shards)] == [0, 1, 3]
    assert not part0.exists()  # dropped, to be generated again
    assert read_parts(tmp_path, shards[2:3]).column("shard").to_pylist() == [2]
