"""The synthesize stage for selection methods: one ranked candidate set per seed.

Each class's candidates are the method's ranking to `per_class x oversample`
rows (`rank` 0 first): the first `per_class` are its selection, the rest the
reserve the filter stage refills from when a filter drops a pick. Every
training row is accounted for in each replicate (one per seed): it is either a
candidate (`parent_ids = [itself]`) or not selected, so rows in = train rows x
seeds = out + rejected. "Not selected" is implicit: no reject row is written
for it (that table would grow as corpus rows x seeds and say nothing the pool
and the candidates do not); the counts record how many per replicate, and the
audit derives the rows themselves from the pool and the candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from distill_core.artifacts.schemas import SELECTION_SCHEMA, rejects_table
from distill_core.synthesize import (  # noqa: F401 (importing registers the methods)
    bilevel,
    el2n,
    facility_location,
    gradmatch,
    herding,
    kcenter_greedy,
    kmeans_prototypes,
    random_selection,
    span_pursuit,
)
from distill_core.synthesize.base import ClassData, Selection, select_per_class
from distill_core.synthesize.learned_labels import LabelSettings, label_selection
from distill_core.synthesize.learned_weights import WeightSettings, weigh_selection


@dataclass
class TeacherView:
    """Teacher signals aligned with the training rows."""

    grad_logits: np.ndarray
    el2n: np.ndarray
    soft_labels: np.ndarray
    features: np.ndarray | None = None  # the teacher head's inputs (fine-tuned teacher)


@dataclass
class SelectionInputs:
    """Everything one seed's selection reads: shipped once to remote workers."""

    method: str
    features: np.ndarray
    label_ids: np.ndarray
    per_class: int
    params: dict[str, Any]
    grad_logits: np.ndarray | None = None
    el2n: np.ndarray | None = None
    grad_features: np.ndarray | None = None
    oversample: int = 1  # each class ranked to per_class x oversample rows
    weights: WeightSettings | None = None  # learn the picks' weights (None: the method's)
    probe_features: np.ndarray | None = None  # the probe's features, when not `features`
    labels: LabelSettings | None = None  # learn the picks' soft labels
    n_classes: int = 0  # the soft labels' width (the corpus's classes)

    def select(self, seed: int) -> Selection:
        data = ClassData(self.features, self.grad_logits, self.el2n, self.grad_features)
        selection = select_per_class(self.method, data, self.label_ids, self.per_class, seed,
                                     self.params, self.oversample)
        x = self.features if self.probe_features is None else self.probe_features
        if self.labels is not None:
            selection = label_selection(selection, x, self.label_ids, self.per_class, seed,
                                        self.labels, self.n_classes)
        if self.weights is None:
            return selection
        return weigh_selection(selection, x, self.label_ids, self.per_class, seed, self.weights)


# Runs the selection of every seed: in process by default, or through an executor.
SeedSelector = Callable[[SelectionInputs, list[int]], list[Selection]]


def select_in_process(inputs: SelectionInputs, seeds: list[int]) -> list[Selection]:
    return [inputs.select(seed) for seed in seeds]


@dataclass
class CandidateSet:
    candidates: pa.Table
    rejects: pa.Table
    counts: dict[str, Any] = field(default_factory=dict)
    shortfall: dict[int, dict[int, dict[str, int]]] = field(default_factory=dict)


def count_not_selected(result: CandidateSet, rows: int) -> None:
    """Pool rows a method never saw (left out of its sample or its eligible rows) are not
    selected in every replicate: the counts keep rows in = the whole pool x seeds, as the
    audit derives them."""
    counts, seeds = result.counts, int(result.counts["replicates"])
    counts["rows_in"] += rows * seeds
    counts["rows_rejected"] += rows * seeds
    counts["rejects_by_reason"]["not_selected"] += rows * seeds
    counts["implicit_rejects"]["not_selected"] = [
        n + rows for n in counts["implicit_rejects"]["not_selected"]]


class PoolTable(Protocol):
    """The pool's rows: a table, or rows fetched from the corpus's parts on demand."""

    @property
    def num_rows(self) -> int: ...

    def take(self, indices: pa.Array) -> pa.Table: ...


class SeedInputs(Protocol):
    """What `select_candidates` needs of a selection's inputs (in memory or streamed)."""

    method: str
    oversample: int

    def select(self, seed: int) -> Selection: ...


def select_candidates(train: PoolTable, inputs: SeedInputs, seeds: list[int], run_id: str,
                      soft_labels: np.ndarray | None = None,
                      selector: Callable[[Any, list[int]], list[Selection]] = select_in_process
                      ) -> CandidateSet:
    """`inputs.per_class` rows per class of `train` (aligned with `inputs.features`), per seed.

    `soft_labels` [n, C], aligned with `train`, are attached to the selected rows when
    given (a selection's own learned labels, `Selection.soft_labels`, come first).
    `selector` runs the seeds' selections (in process, or through an executor).
    """
    method = inputs.method
    pieces, not_selected, shortfall = [], [], {}
    selections = selector(inputs, list(seeds))
    # The rows every seed picked, fetched once (from the parts, for a streamed pool).
    union = np.unique(np.concatenate([s.indices for s in selections] or [np.zeros(0, int)]))
    picked_rows = train.take(pa.array(union, pa.int64()))
    for replicate, (seed, picked) in enumerate(zip(seeds, selections, strict=True)):
        if picked.soft_labels is not None:  # learned for this replicate's rows
            soft = pa.array(picked.soft_labels.tolist(), pa.list_(pa.float32()))
        elif soft_labels is not None:
            soft = pa.array([soft_labels[i].tolist() for i in picked.indices],
                            pa.list_(pa.float32()))
        else:
            soft = pa.nulls(len(picked.indices), pa.list_(pa.float32()))
        chosen = picked_rows.take(pa.array(np.searchsorted(union, picked.indices), pa.int64()))
        n = chosen.num_rows
        pieces.append(pa.table({
            "example_id": chosen.column("example_id"),
            "replicate": pa.array([replicate] * n, pa.int32()),
            "text": chosen.column("text"),
            "text_pair": chosen.column("text_pair"),
            "label": chosen.column("label"),
            "label_id": chosen.column("label_id"),
            "parent_ids": pa.array([[i] for i in chosen.column("example_id").to_pylist()],
                                   pa.list_(pa.string())),
            "method": pa.array([method] * n, pa.string()),
            "run_id": pa.array([run_id] * n, pa.string()),
            "seed": pa.array([seed] * n, pa.int64()),
            "rank": pa.array(picked.ranks, pa.int32()),
            "score": pa.array(picked.scores, pa.float64(), from_pandas=True),
            "weight": pa.array(picked.weights, pa.float64()),
            "soft_label": soft,
        }, schema=SELECTION_SCHEMA))
        not_selected.append(train.num_rows - len(np.unique(picked.indices)))
        if picked.shortfall:
            shortfall[replicate] = picked.shortfall
    candidates = pa.concat_tables(pieces)
    counts = {
        "rows_in": int(train.num_rows * len(seeds)),
        "rows_out": candidates.num_rows,
        "rows_rejected": int(sum(not_selected)),
        "rejects_by_reason": {"not_selected": int(sum(not_selected))},
        "implicit_rejects": {"not_selected": [int(n) for n in not_selected]},
        "replicates": len(seeds),
        "oversample": inputs.oversample,
    }
    return CandidateSet(candidates, rejects_table([]), counts, shortfall)
