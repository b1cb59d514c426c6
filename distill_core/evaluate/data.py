"""One reader from a run's artifacts to what learners train and are scored on.

The evaluate stage and the benchmark both read a run through here, so a
distilled row trains the same way in both: its features come from the
training split or, for a generated row, from the `generate` artifact; its
texts, pair texts and label from the distilled set itself; its weight when the
set's weights are not all 1; its soft label when every row of the replicate
carries one. The baselines (`random`, `full`) go through the run's filters when
`EvaluationData.filters` is given (`evaluate/baselines.py`), each computed once.
Evaluation rows are read as ingest kept them, duplicates included: they are
never looked up by example id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.store import RunStore
from distill_core.evaluate.baselines import BaselineFilters, Subset, full_baseline, random_rows
from distill_core.generate.features import GeneratedFeatures, generated_features
from distill_core.learners import LearnerData, TrainingRows
from distill_core.signals.embeddings import pair_texts, split_features

if TYPE_CHECKING:
    from distill_core.evaluate.streamed import StreamedFeaturePool
    from distill_core.learners.embeds import LearnedSource


def learner_data(table: pa.Table, x: np.ndarray) -> LearnerData:
    """Texts, pair texts (None for a single-text task) and label ids of `table`, with `x`."""
    return LearnerData(texts=table.column("text").to_pylist(), pairs=pair_texts(table), x=x,
                       y=table.column("label_id").to_numpy())


class FeaturePool:
    """The rows a distilled set can name: the training split, then the generated rows."""

    def __init__(self, train: pa.Table, train_x: np.ndarray,
                 generated: GeneratedFeatures | None = None,
                 learned: LearnedSource | None = None) -> None:
        self.train, self.train_x = train, train_x
        self.learned = learned  # a learned run's synthetic tensors (embeds_finetune)
        self.train_y = train.column("label_id").to_numpy()
        self.position = {e: i for i, e in enumerate(train.column("example_id").to_pylist())}
        self.x = train_x if generated is None else generated.extend(self.position, train_x)

    def full(self) -> TrainingRows:
        """The whole training split."""
        return TrainingRows(learner_data(self.train, self.train_x))

    def take_rows(self, indices: np.ndarray) -> pa.Table:
        """Training rows by position."""
        return self.train.take(pa.array(indices, pa.int64()))

    def sample(self, indices: np.ndarray) -> TrainingRows:
        """Rows of the training split by position (a baseline's subset)."""
        return TrainingRows(learner_data(self.train.take(pa.array(indices, pa.int64())),
                                         self.train_x[indices]))

    def replicate(self, distilled: pa.Table, replicate: int) -> TrainingRows:
        """One replicate of a distilled set, with its weights and soft labels when it has them."""
        subset = distilled.filter(pc.equal(distilled.column("replicate"), replicate))
        rows = np.fromiter((self.position[e] for e in subset.column("example_id").to_pylist()),
                           dtype=np.int64, count=subset.num_rows)
        weights = subset.column("weight").to_numpy()
        soft = None
        if subset.num_rows and subset.column("soft_label").null_count == 0:
            soft = np.asarray(subset.column("soft_label").to_pylist(), dtype=np.float64)
        synthetic = (None if self.learned is None else self.learned.rows_for(
            replicate, subset.column("example_id").to_pylist()))
        return TrainingRows(learner_data(subset, self.x[rows]),
                            weights=None if np.allclose(weights, 1.0) else weights, soft=soft,
                            synthetic=synthetic)


def _label_count(store: RunStore, evaluation_rows: int) -> int:
    """The run's label count; an error when ingest has not run or left no evaluation row."""
    if evaluation_rows == 0:
        raise RuntimeError(f"{store.root}: the evaluation split has no usable rows (see "
                           "ingest rejects)")
    ingest = store.manifest("ingest")
    if ingest is None:
        raise RuntimeError(f"{store.root}: ingest has not run")
    return len(ingest["label_names"])


@dataclass
class EvaluationData:
    """A run's training pool, evaluation split, label count and distilled sets (if filtered);
    `filters`: the run's filters, which the baselines go through too (None: unfiltered)."""

    pool: FeaturePool | StreamedFeaturePool
    evaluation: LearnerData
    n_labels: int
    distilled: pa.Table | None = None
    filters: BaselineFilters | None = None
    _subsets: dict[tuple, Subset] = field(default_factory=dict, repr=False, compare=False)

    @property
    def labels(self) -> list[int]:
        return list(range(self.n_labels))

    def random_subset(self, per_class: int, seed: int) -> Subset:
        """The seed's random baseline at `per_class` (filtered and refilled with `filters`)."""
        key = ("random", per_class, seed)
        if key not in self._subsets:
            self._subsets[key] = random_rows(self.pool.train_y, self.pool.take_rows,
                                             self.n_labels, per_class, seed, self.filters)
        return self._subsets[key]

    def full_subset(self) -> Subset:
        """The full baseline: the training split after the contamination filter."""
        if ("full",) not in self._subsets:
            self._subsets[("full",)] = full_baseline(self.pool.train, self.filters)
        return self._subsets[("full",)]

    @classmethod
    def from_store(cls, store: RunStore, filters: BaselineFilters | None = None
                   ) -> EvaluationData:
        """Read ingest, signals, filter and (when the run generated rows) generate."""
        corpus, embeddings = store.read("ingest"), store.read("signals")
        train, train_x = split_features(corpus, embeddings, "train")
        evaluation, eval_x = split_features(corpus, embeddings, "eval")
        n_labels = _label_count(store, evaluation.num_rows)
        from distill_core.learners.embeds import LearnedSource

        return cls(pool=FeaturePool(train, train_x, generated_features(store),
                                    LearnedSource.from_store(store)),
                   evaluation=learner_data(evaluation, eval_x),
                   n_labels=n_labels,
                   distilled=store.read("filter") if store.manifest("filter") else None,
                   filters=filters)

    @classmethod
    def streamed_from_store(cls, store: RunStore, filters: BaselineFilters | None = None
                            ) -> EvaluationData:
        """As `from_store`, without the training split in memory (`StreamedFeaturePool`): for
        evaluations without the `full` baseline, which needs every row."""
        from distill_core.evaluate.streamed import StreamedFeaturePool
        from distill_core.learners.embeds import LearnedSource
        from distill_core.pipeline.filter_context import StreamedFilterContext

        pool = StreamedFeaturePool(store, generated_features(store),
                                   LearnedSource.from_store(store))
        distilled = store.read("filter") if store.manifest("filter") else None
        ids = distilled.column("example_id").to_pylist() if distilled is not None else []
        evaluation, eval_x = pool.prefetch(ids, "eval")
        if filters is not None and isinstance(filters.context, StreamedFilterContext):
            # the filters' eval split and each random draw's rows come from the pool's reads
            filters.context.share_reads(evaluation, eval_x, pool.read_rows)
        n_labels = _label_count(store, evaluation.num_rows)
        return cls(pool=pool, evaluation=learner_data(evaluation, eval_x), n_labels=n_labels,
                   distilled=distilled, filters=filters)
