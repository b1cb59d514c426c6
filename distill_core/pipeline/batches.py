"""A stage's rows read batch by batch, and two stages read side by side, row for row.

Stages whose output is one row per corpus row (signals, teacher) list the corpus's rows in
its order, so a consumer can walk the corpus and its embeddings together without holding
either: `aligned_batches` re-slices the two streams to common boundaries. A consumer that
wants a few rows by position reads them with `rows_at` (or walks them with `GroupsAt`),
which decodes only the row groups holding them (vector stages write row groups of ~16 MiB:
`artifacts/layout.py`). Parts are checked against their manifest first (size, sha256), as
`RunStore.read` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distill_core.artifacts.store import RunStore, part_file
from distill_core.errors import ArtifactError

BATCH_ROWS = 65_536  # rows a streaming reader holds at a time


def verified_parts(store: RunStore, stage: str) -> list[Path]:
    """The stage's row parts, after checking them against its manifest."""
    if store.manifest(stage) is None:
        raise ArtifactError(f"{store.stage_dir(stage)}: no artifact (has the stage run?)")
    if (problem := store.verify(stage)) is not None:
        raise ArtifactError(f"{store.stage_dir(stage)}: {problem}; rerun the command to "
                            "recompute the stage")
    return store.parts(stage)


def stage_rows(store: RunStore, stage: str) -> int:
    """Rows of a stage's artifact, from its parts' footers (no data read)."""
    return sum(part_file(p).metadata.num_rows for p in verified_parts(store, stage))


def _group_runs(meta: pq.FileMetaData, batch_rows: int) -> list[list[int]]:
    """A part's row groups in order, in runs of consecutive groups holding at most
    `batch_rows` rows together (a larger group is a run of its own)."""
    runs: list[list[int]] = []
    rows = 0
    for group in range(meta.num_row_groups):
        size = meta.row_group(group).num_rows
        if not runs or rows + size > batch_rows:
            runs.append([])
            rows = 0
        runs[-1].append(group)
        rows += size
    return runs


def stage_batches(store: RunStore, stage: str, columns: list[str] | None = None,
                  batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """The stage's rows in order, `batch_rows` at a time (the last batch of a part shorter).

    Parts are read a batch's worth of row groups at a time (`_group_runs`): `iter_batches`
    over a whole file pre-buffers every row group it will read, so memory would follow the
    part (200k rows: ~300 MB of vectors), not the batch; and small row groups read together
    come back as one batch, not as pieces to join with a copy."""
    for path in verified_parts(store, stage):
        yield from part_batches(path, columns, batch_rows)


def part_batches(path: Path, columns: list[str] | None = None,
                 batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """One part's rows in order, `batch_rows` at a time (see `stage_batches`; the caller has
    verified the part)."""
    handle = part_file(path)
    held: list[pa.RecordBatch] = []
    rows = 0
    for groups in _group_runs(handle.metadata, batch_rows):
        for batch in handle.iter_batches(batch_size=batch_rows, row_groups=groups,
                                         columns=columns):
            held.append(batch)
            rows += batch.num_rows
            while rows >= batch_rows:
                table = pa.Table.from_batches(held)
                yield table.slice(0, batch_rows).combine_chunks()
                rest = table.slice(batch_rows)
                held, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield pa.Table.from_batches(held).combine_chunks()


@dataclass
class GroupsAt:
    """Walks the row groups of a stage that hold one of `positions` (sorted row numbers; one
    may repeat): for each, the slice of `positions` it holds and the rows at them, in order;
    only those row groups are read. After the walk, `stage_rows` is the stage's row count
    (from the parts' footers), so a caller can check it against the stage it pairs these
    rows with."""

    store: RunStore
    stage: str
    positions: np.ndarray
    columns: list[str]
    stage_rows: int = 0

    def __iter__(self) -> Iterator[tuple[slice, pa.Table]]:
        offset = 0
        for path in verified_parts(self.store, self.stage):
            handle = part_file(path)
            for group in range(handle.metadata.num_row_groups):
                rows = handle.metadata.row_group(group).num_rows
                first, last = (int(i) for i in np.searchsorted(self.positions,
                                                                [offset, offset + rows]))
                if last > first:
                    table = handle.read_row_group(group, columns=self.columns)
                    yield slice(first, last), table.take(
                        pa.array(self.positions[first:last] - offset))
                offset += rows
        self.stage_rows = offset


def rows_at(store: RunStore, stage: str, positions: np.ndarray, columns: list[str]
            ) -> tuple[pa.Table, int]:
    """The stage's rows at `positions` (sorted row numbers), in that order, reading
    only the row groups that hold one of them; and the stage's row count (`GroupsAt`)."""
    walk = GroupsAt(store, stage, positions, columns)
    pieces = [table for _, table in walk]
    if pieces:
        return pa.concat_tables(pieces), walk.stage_rows
    empty = part_file(verified_parts(store, stage)[0]).schema_arrow.empty_table()
    return empty.select(columns), walk.stage_rows


def with_starts(batches: Iterator[pa.Table]) -> Iterator[tuple[int, pa.Table]]:
    """(first row, rows) of each batch of a stage's batches."""
    start = 0
    for rows in batches:
        yield start, rows
        start += rows.num_rows


def aligned_batches(store: RunStore, left: tuple[str, list[str]], right: tuple[str, list[str]],
                    batch_rows: int = BATCH_ROWS) -> Iterator[tuple[int, pa.Table, pa.Table]]:
    """(first row, left rows, right rows) of two one-row-per-corpus-row stages, sliced to the
    same boundaries; an error when one stage has more rows than the other."""
    streams = [stage_batches(store, stage, columns, batch_rows) for stage, columns in (left,
                                                                                       right)]
    held: list[pa.Table | None] = [None, None]
    start = 0
    while True:
        for side in (0, 1):
            while held[side] is None or held[side].num_rows == 0:
                held[side] = next(streams[side], None)
                if held[side] is None:
                    break
        if held[0] is None or held[1] is None:
            if held[0] is not None or held[1] is not None:
                longer = left[0] if held[0] is not None else right[0]
                raise ArtifactError(f"{longer} has more rows than "
                                    f"{right[0] if longer == left[0] else left[0]} (different "
                                    "run inputs?); rerun the command to recompute the stages")
            return
        n = min(held[0].num_rows, held[1].num_rows)
        a, b = held[0].slice(0, n), held[1].slice(0, n)
        held = [held[0].slice(n), held[1].slice(n)]
        yield start, a, b
        start += n


class RowStream:
    """A stage's rows handed out `take(n)` at a time, whatever its parts' batch sizes: a
    consumer walks the stage next to another source of the same rows (a worker pool's
    output) holding one batch of each."""

    def __init__(self, store: RunStore, stage: str, columns: list[str],
                 batch_rows: int = BATCH_ROWS) -> None:
        self._batches = stage_batches(store, stage, columns, batch_rows)
        self._held: pa.Table | None = None

    def take(self, rows: int) -> pa.Table:
        """The next `rows` rows (fewer at the end of the stage)."""
        pieces: list[pa.Table] = []
        wanted = rows
        while wanted > 0:
            if self._held is None or self._held.num_rows == 0:
                self._held = next(self._batches, None)
                if self._held is None:
                    break
            piece = self._held.slice(0, wanted)
            self._held = self._held.slice(piece.num_rows)
            pieces.append(piece)
            wanted -= piece.num_rows
        return (pa.concat_tables(pieces).combine_chunks() if pieces
                else pa.table({}))

    def exhausted(self) -> bool:
        """Whether every row has been taken."""
        while self._held is None or self._held.num_rows == 0:
            self._held = next(self._batches, None)
            if self._held is None:
                return True
        return False
