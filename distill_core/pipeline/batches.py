"""A stage's rows read batch by batch, and two stages read side by side, row for row.

Stages whose output is one row per corpus row (signals, teacher) list the corpus's rows in
its order, so a consumer can walk the corpus and its embeddings together without holding
either: `aligned_batches` re-slices the two streams to common boundaries. Parts are checked
against their manifest first (size, sha256), as `RunStore.read` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

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


def stage_batches(store: RunStore, stage: str, columns: list[str] | None = None,
                  batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """The stage's rows in order, `batch_rows` at a time (the last batch of a part shorter)."""
    for path in verified_parts(store, stage):
        handle = part_file(path)
        for batch in handle.iter_batches(batch_size=batch_rows, columns=columns):
            yield pa.Table.from_batches([batch])


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
