"""What stage bodies read from upstream artifacts: label names, the selection pool, the
teacher's view of the training rows, a few corpus rows by id, the teacher on new texts (the
filters' context: `pipeline/filter_context.py`).

The selection pool comes two ways: whole in memory (`selection_pool`, for the learned and
generative methods; refused above `IN_MEMORY_POOL_ROWS` rows), or streamed (`streamed_pool`:
one pass over the corpus and its embeddings, batch by batch, spilling each class's features
to a file of its own and keeping only each pool row's corpus position and class). The
selection methods that hold the pool (`in_memory_pool`: auto, bilevel, span_pursuit,
gradmatch, kmeans or herding with learned labels...) draw from a seeded, class-stratified
sample of `IN_MEMORY_POOL_ROWS` rows of a larger pool instead of refusing it; the teacher's
signals of those rows are read by corpus position (`teacher_at`: the teacher stage has one
row per corpus row, in corpus order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.cache_use import mark_used
from distill_core.artifacts.store import RunStore, part_file
from distill_core.config import RunConfig
from distill_core.errors import ArtifactError, ConfigError
from distill_core.pipeline.batches import (
    GroupsAt,
    aligned_batches,
    rows_at,
    stage_batches,
    stage_rows,
    verified_parts,
    with_starts,
)
from distill_core.pipeline.executor import Executor, Resources
from distill_core.signals.embeddings import features, matrix, split_features
from distill_core.signals.teacher import class_logits, fit_teacher, softmax
from distill_core.synthesize.class_rows import ClassRows, SpillWriter
from distill_core.synthesize.stage import TeacherView

# Above this many pool rows, a selection method that holds the pool draws from a sample of
# this many; one that reads teacher signals, a learned or a generative one is refused.
IN_MEMORY_POOL_ROWS = 1_000_000
POOL_SAMPLE_SEED = 0  # the sample of a larger pool: the same rows for every seed and rerun
POOL_COLUMNS = ["example_id", "text", "text_pair", "label", "label_id"]


def label_names(store: RunStore) -> list[str]:
    manifest = store.manifest("ingest")
    if manifest is None:
        raise RuntimeError("ingest has not run")
    return list(manifest["label_names"])


def id_keys(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The first 16 hex digits of each `example_id` as a uint64: a compact key for set
    membership (two of 5 million ids share one with odds of about 1 in 10^6)."""
    head = pc.utf8_slice_codeunits(ids, 0, 16).to_numpy(zero_copy_only=False)
    codes = np.asarray(head, dtype="S16").view(np.uint8).reshape(-1, 16).astype(np.uint64)
    if len(codes) and ((codes < 48) | ((codes > 57) & (codes < 97)) | (codes > 102)).any():
        raise ArtifactError("example_id values are not lower-case hex (written by another "
                            "version?); rerun the command to recompute the stages")
    digits = np.where(codes >= 97, codes - np.uint64(87), codes - np.uint64(48))
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    return np.bitwise_or.reduce(digits << shifts, axis=1)


def kept_keys(store: RunStore) -> np.ndarray:
    """The clean stage's kept rows as sorted `id_keys` (8 bytes a row)."""
    keys = [id_keys(b.column("example_id")) for b in stage_batches(store, "clean",
                                                                    ["example_id"])]
    return np.sort(np.concatenate(keys)) if keys else np.zeros(0, np.uint64)


def _in_pool(rows: pa.Table, kept: np.ndarray | None) -> np.ndarray:
    """Which corpus rows are in the pool: training rows, kept by the corpus filters."""
    mask = np.asarray(pc.equal(rows.column("split"), "train").to_numpy(zero_copy_only=False),
                      dtype=bool)
    if kept is not None and mask.any():
        keys = id_keys(rows.column("example_id"))
        at = np.minimum(np.searchsorted(kept, keys), max(len(kept) - 1, 0))
        mask &= (kept[at] == keys) if len(kept) else False
    return mask


@dataclass
class PoolRows:
    """The pool's rows by corpus position; `take` reads just the asked-for rows' row groups
    from the corpus parts (what `select_candidates` needs of a table)."""

    store: RunStore
    positions: np.ndarray  # corpus row of each pool row, in pool order
    columns: tuple[str, ...] = tuple(POOL_COLUMNS)

    @property
    def num_rows(self) -> int:
        return len(self.positions)

    def take(self, indices: pa.Array | np.ndarray) -> pa.Table:
        wanted = self.positions[np.asarray(indices, dtype=np.int64)]
        order = np.argsort(wanted, kind="stable")
        table, _ = rows_at(self.store, "ingest", wanted[order], list(self.columns))
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[order] = np.arange(len(order))
        return table.take(pa.array(inverse))


@dataclass
class StreamedPool:
    """The selection pool without its features in memory: rows by position, each row's
    class, and each class's features spilled to disk (None when not asked for)."""

    rows: PoolRows
    label_ids: np.ndarray
    classes: dict[int, ClassRows] | None
    feature_mean: np.ndarray | None = None  # of every pool row's features, when spilled


def streamed_pool(cfg: RunConfig, store: RunStore, spill: Path | None) -> StreamedPool:
    """The pool in one pass over the corpus (and, with `spill`, its embeddings, each class's
    features written to `spill`), holding 8 bytes per pool row (int32 positions and label
    ids; int64 positions past 2**31 corpus rows)."""
    kept = kept_keys(store) if cfg.filter.corpus else None
    positions, labels = [], []
    at = np.int32 if stage_rows(store, "ingest") < 2**31 else np.int64
    columns = ["example_id", "split", "label_id"]
    if spill is None:
        batches = ((start, rows, None) for start, rows in with_starts(
            stage_batches(store, "ingest", columns)))
    else:
        batches = aligned_batches(store, ("ingest", columns), ("signals",
                                                               signal_columns(store)))
    writer = SpillWriter(spill) if spill is not None else None
    for start, rows, embedded in batches:
        mask = _in_pool(rows, kept)
        if embedded is not None and not rows.column("example_id").equals(
                embedded.column("example_id")):
            raise RuntimeError("embeddings are not aligned with the corpus (different run "
                               "inputs?)")
        if not mask.any():
            continue
        label_ids = rows.column("label_id").to_numpy()[mask]
        positions.append((start + np.flatnonzero(mask)).astype(at))
        labels.append(label_ids.astype(np.int32))
        if writer is not None and embedded is not None:
            writer.add(label_ids, features(embedded.filter(pa.array(mask))))
    return StreamedPool(
        PoolRows(store, np.concatenate(positions) if positions else np.zeros(0, at)),
        np.concatenate(labels) if labels else np.zeros(0, np.int32),
        writer.close() if writer is not None else None,
        writer.mean() if writer is not None else None)


def kept_train_rows(store: RunStore) -> np.ndarray:
    """Positions, among the training rows in corpus order, of those the clean stage kept (one
    pass over the corpus ids, the kept set held as `id_keys`)."""
    kept, found, offset = kept_keys(store), [], 0
    for rows in stage_batches(store, "ingest", ["example_id", "split"]):
        train = np.asarray(pc.equal(rows.column("split"), "train").to_numpy(
            zero_copy_only=False), dtype=bool)
        found.append(offset + np.flatnonzero(_in_pool(rows, kept)[train]))
        offset += int(train.sum())
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _too_large(cfg: RunConfig, size: int) -> ConfigError:
    return ConfigError(
        f"synthesize.method {cfg.synthesize.method!r} holds the whole training pool in "
        f"memory and the pool has {size} rows, over the limit of {IN_MEMORY_POOL_ROWS}: "
        "use kmeans, herding or random (they stream), or a smaller corpus")


def selection_pool(cfg: RunConfig, store: RunStore) -> tuple[pa.Table, np.ndarray]:
    """The training rows a method draws on (after the corpus filters, when on), with features,
    in memory: refused (one line) above `IN_MEMORY_POOL_ROWS` rows."""
    positions = streamed_pool(cfg, store, None).rows.positions
    if len(positions) > IN_MEMORY_POOL_ROWS:
        raise _too_large(cfg, len(positions))
    return pool_at(store, positions)


@dataclass
class InMemoryPool:
    """What a selection method holds: pool rows, their features and corpus positions (all of
    the pool, or a sample of it), and the whole pool's row count."""

    train: pa.Table
    features: np.ndarray
    pool_rows: int
    positions: np.ndarray  # corpus row of each of `train`'s rows (sorted)
    sample: dict[str, int] | None = None  # {"rows", "of", "seed"} when sampled


def in_memory_pool(cfg: RunConfig, store: RunStore) -> InMemoryPool:
    """The pool whole up to `IN_MEMORY_POOL_ROWS` rows (as `selection_pool`); above it a
    seeded, class-stratified sample of that many rows, read by corpus position (each class
    keeps at least its ranked rows, `per_class x oversample`, or all it has)."""
    pool = streamed_pool(cfg, store, None)
    size = pool.rows.num_rows
    if size <= IN_MEMORY_POOL_ROWS:
        positions = pool.rows.positions.astype(np.int64)
        train, x = pool_at(store, positions)
        return InMemoryPool(train, x, size, positions)
    keep = class_sample(pool.label_ids, IN_MEMORY_POOL_ROWS,
                        cfg.synthesize.per_class * cfg.synthesize.oversample, POOL_SAMPLE_SEED)
    positions = pool.rows.positions[keep].astype(np.int64)
    train, x = pool_at(store, positions)
    return InMemoryPool(train, x, size, positions,
                        {"rows": len(keep), "of": size, "seed": POOL_SAMPLE_SEED})


def pool_at(store: RunStore, positions: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """The corpus rows at `positions` (sorted corpus row numbers) and their features, read
    row group by row group: the features are filled into one float32 matrix as they are
    read, so the pool's vectors are held once (not also as an Arrow table and a filtered
    copy of it), and no other split's rows are read."""
    names = part_file(verified_parts(store, "ingest")[0]).schema_arrow.names
    train, corpus_rows = rows_at(store, "ingest", positions, names)
    x, signal_rows = features_at(store, positions, train.column("example_id"))
    if signal_rows != corpus_rows:
        raise RuntimeError("embeddings are not aligned with the corpus (different run inputs?)")
    return train, x


def features_at(store: RunStore, positions: np.ndarray, ids: pa.ChunkedArray
                ) -> tuple[np.ndarray, int]:
    """Features of the signals rows at `positions` (sorted), in that order, and the stage's
    row count; each row group's `example_id`s must be `ids` (the corpus rows at those
    positions), or the embeddings belong to other run inputs."""
    columns = signal_columns(store)
    empty = features(part_file(verified_parts(store, "signals")[0]).schema_arrow
                     .empty_table().select(columns))
    out = np.empty((len(positions), empty.shape[1]), dtype=empty.dtype)
    walk = GroupsAt(store, "signals", positions, columns)
    for held, table in walk:
        if not table.column("example_id").equals(ids.slice(held.start, held.stop - held.start)):
            raise RuntimeError("embeddings are not aligned with the corpus (different run "
                               "inputs?)")
        out[held] = features(table)
    return out, walk.stage_rows


def class_sample(label_ids: np.ndarray, rows: int, least: int, seed: int) -> np.ndarray:
    """Sorted indices of about `rows` of `label_ids`, each class's share kept (largest
    remainders round) and never under `least` rows (or the class's own count)."""
    classes, counts = np.unique(label_ids, return_counts=True)
    share = counts * (rows / len(label_ids))
    take = np.floor(share).astype(np.int64)
    take[np.argsort(take - share, kind="stable")[:rows - int(take.sum())]] += 1
    take = np.minimum(np.maximum(take, least), counts)
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(label_ids == label), size=int(n), replace=False)
              for label, n in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def teacher_view(store: RunStore, train_ids: list[str], temperature: float) -> TeacherView:
    """Teacher signals of the training rows `train_ids`, in that order: their corpus
    positions found in one pass over the corpus's ids (`id_keys`), then `teacher_at`."""
    wanted = id_keys(pa.array(train_ids, pa.string()))
    order = np.argsort(wanted, kind="stable")
    sorted_keys = wanted[order]
    positions = np.full(len(train_ids), -1, dtype=np.int64)
    for start, rows in with_starts(stage_batches(store, "ingest", ["example_id", "split"])):
        train = np.asarray(pc.equal(rows.column("split"), "train").to_numpy(
            zero_copy_only=False), dtype=bool)
        keys = id_keys(rows.column("example_id"))
        at = np.minimum(np.searchsorted(sorted_keys, keys), max(len(sorted_keys) - 1, 0))
        found = train & (sorted_keys[at] == keys) if len(sorted_keys) else train & False
        positions[order[at[found]]] = start + np.flatnonzero(found)
    missing = [train_ids[i] for i in np.flatnonzero(positions < 0)[:5].tolist()]
    if missing:
        raise RuntimeError(f"no teacher signals for training rows {missing}")
    by_position = np.argsort(positions, kind="stable")
    view = teacher_at(store, positions[by_position],
                      pa.chunked_array([pa.array(train_ids, pa.string()).take(
                          pa.array(by_position))]), temperature)
    back = np.empty_like(by_position)
    back[by_position] = np.arange(len(by_position))
    return TeacherView(grad_logits=view.grad_logits[back], el2n=view.el2n[back],
                       soft_labels=view.soft_labels[back],
                       features=None if view.features is None else view.features[back])


def teacher_at(store: RunStore, positions: np.ndarray, ids: pa.ChunkedArray,
               temperature: float) -> TeacherView:
    """Teacher signals of the corpus rows at `positions` (sorted), in that order, reading only
    the teacher's row groups that hold them; `ids` are those rows' `example_id`s, which the
    teacher's rows must repeat (else it was computed for other run inputs)."""
    names = part_file(verified_parts(store, "teacher")[0]).schema_arrow.names
    columns = ["example_id", "grad_logits", "el2n", "logits"] + (
        ["features"] if "features" in names else [])
    table, _ = rows_at(store, "teacher", positions, columns)
    if not table.column("example_id").equals(ids):
        raise ArtifactError("the teacher stage's rows are not the corpus's (different run "
                            "inputs?); rerun the command to recompute the stages")
    return TeacherView(grad_logits=matrix(table, "grad_logits"),
                       el2n=table.column("el2n").to_numpy(),
                       soft_labels=softmax(matrix(table, "logits").astype(np.float64),
                                           temperature).astype(np.float32),
                       features=matrix(table, "features") if "features" in names else None)


def signal_columns(store: RunStore) -> list[str]:
    """The signals columns that make a row's features (`embedding_pair` for pair tasks)."""
    names = part_file(verified_parts(store, "signals")[0]).schema_arrow.names
    return ["example_id", "embedding"] + (["embedding_pair"] if "embedding_pair" in names
                                          else [])


def corpus_where(store: RunStore, pick: Callable[[pa.Table, int], np.ndarray],
                 columns: list[str]) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The corpus rows `pick(rows, first row)` marks, their features and corpus positions, in
    corpus order: one streamed pass over the corpus (`columns`), then only the row groups of
    the embeddings that hold a marked row (`rows_at`), so a few rows of a large corpus cost
    a pass over its texts, not over its vectors. Holds only the marked rows."""
    tables, positions, empty = [], [], None
    start = 0
    for rows in stage_batches(store, "ingest", columns):
        mask = np.asarray(pick(rows, start), dtype=bool)
        empty = empty if empty is not None else rows.slice(0, 0)
        if mask.any():
            tables.append(rows.filter(pa.array(mask)))
            positions.append(start + np.flatnonzero(mask))
        start += rows.num_rows
    if empty is None:
        raise ArtifactError(f"{store.stage_dir('ingest')}: the corpus has no rows")
    at = np.concatenate(positions) if positions else np.zeros(0, np.int64)
    embedded, embedded_rows = rows_at(store, "signals", at, signal_columns(store))
    if embedded_rows != start:
        raise ArtifactError(f"signals has {embedded_rows} rows and ingest {start} (different "
                            "run inputs?); rerun the command to recompute the stages")
    chosen = pa.concat_tables(tables) if tables else empty
    if not chosen.column("example_id").equals(embedded.column("example_id")):
        raise RuntimeError("embeddings are not aligned with the corpus (different run inputs?)")
    return chosen, features(embedded), at


def ids_pick(ids: list[str], splits: tuple[str, ...] = ()
             ) -> Callable[[pa.Table, int], np.ndarray]:
    """A `corpus_where` pick: rows whose example_id is in `ids` (by `id_keys`, then checked
    exactly), and every row of `splits`."""
    wanted = np.unique(id_keys(pa.array(ids, pa.string()))) if ids else np.zeros(0, np.uint64)
    exact = set(ids)

    def pick(rows: pa.Table, _start: int) -> np.ndarray:
        mask = np.zeros(rows.num_rows, dtype=bool)
        if len(wanted):
            keys = id_keys(rows.column("example_id"))
            at = np.minimum(np.searchsorted(wanted, keys), len(wanted) - 1)
            hits = np.flatnonzero(wanted[at] == keys)
            if len(hits):
                found = rows.column("example_id").take(pa.array(hits)).to_pylist()
                mask[hits[[e in exact for e in found]]] = True
        for split in splits:
            mask |= np.asarray(pc.equal(rows.column("split"), split).to_numpy(
                zero_copy_only=False), dtype=bool)
        return mask

    return pick


def teacher_model_folder(store: RunStore, fingerprint: str) -> Path:
    """Where a fine-tuned teacher lives: the runs folder's cache, by the teacher stage's
    fingerprint, so a run that restores the (cached) teacher stage finds its model too."""
    return store.local_cache_root("teacher.kind=finetune") / "teacher_model" / fingerprint[:16]


def teacher_model_dir(store: RunStore) -> str:
    """The fine-tuned teacher of this run's teacher stage."""
    folder = teacher_model_folder(store, (store.manifest("teacher") or {})["fingerprint"])
    mark_used(folder)
    return str(folder)


def teacher_probabilities(cfg: RunConfig, store: RunStore, executor: Executor,
                          resources: Resources, texts: list[str], vectors: np.ndarray
                          ) -> np.ndarray:
    """The run's teacher read on new texts: the probe refitted on the training embeddings
    (deterministic), or the fine-tuned teacher loaded from the run folder."""
    if cfg.teacher.kind == "finetune":
        from distill_core.signals.readout import teacher_readout

        logits, _ = teacher_readout(executor, teacher_model_dir(store), texts, None,
                                    cfg.signals.batch_size, resources)
        return softmax(np.asarray(logits, np.float64))
    train, train_x = split_features(store.read("ingest"), store.read("signals"), "train")
    model = fit_teacher(train_x, train.column("label_id").to_numpy(), cfg.teacher.C,
                        cfg.teacher.max_iter)
    return softmax(class_logits(model, vectors, len(label_names(store))).astype(np.float64))
