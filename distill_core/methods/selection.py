"""The selection family: real training rows chosen per class by the selector of the same name
(`distill_core/synthesize/`), one set per seed, the seeds run by the executor; each class
ranked to `synthesize.oversample` times the budget (the filter stage's reserve).

`kmeans`, `herding` and `random` (without teacher soft labels) stream: the pool is read in
one pass, each class's features spilled to a hidden folder of the run (removed after), and
every seed's selection reads its classes from there (`synthesize/streamed.py`); the
manifest's `selection` records how each class was ranked. The other methods hold the pool in
memory (`in_memory_pool`): a pool over `IN_MEMORY_POOL_ROWS` rows as a seeded,
class-stratified sample of that many rows (the manifest's `selection.pool_sample`; the rows
outside it count as not selected); a method that reads teacher signals reads those of its
pool rows by corpus position (`teacher_at`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.config import RunConfig
from distill_core.methods.registry import Method
from distill_core.pipeline.inputs import in_memory_pool, label_names, streamed_pool, teacher_at
from distill_core.pipeline.stage import StageContext
from distill_core.pipeline.stages.teacher import synthesis_reads_teacher
from distill_core.synthesize.auto_cv import probe_spec
from distill_core.synthesize.base import Selection
from distill_core.synthesize.centering import centered, run_centres_features
from distill_core.synthesize.learned_labels import TARGET_C, LabelSettings
from distill_core.synthesize.learned_weights import WeightSettings
from distill_core.synthesize.stage import (
    CandidateSet,
    SelectionInputs,
    count_not_selected,
    select_candidates,
)
from distill_core.synthesize.streamed import (
    EPOCHS,
    SAMPLE_ROWS,
    STREAM_ABOVE_ROWS,
    STREAMED_METHODS,
    StreamedSelection,
)

PoolMask = Callable[[pa.Table, np.ndarray], np.ndarray]


def _probe_c(cfg: RunConfig) -> float:
    """The run's probe C that learned weights and labels are fitted for: 1 when the probe
    chooses its C by cross-validation."""
    c = probe_spec(cfg).C
    return float(c) if c != "cv" else 1.0


def weight_settings(cfg: RunConfig, learn: bool | None = None) -> WeightSettings | None:
    """How the picks' weights are learned (`synthesize.weights`, for the run's probe C; at
    C = 1 when the probe chooses its C by cross-validation), or None when they are not
    (`learn`: whether they are, default `synthesize.weights.learn`)."""
    options = cfg.synthesize.weights
    if not (options.learn if learn is None else learn):
        return None
    return WeightSettings(demand_rows=options.demand_rows, max_ratio=options.max_ratio,
                          steps=options.steps, c=_probe_c(cfg))


def label_settings(cfg: RunConfig, learn: bool | None = None) -> LabelSettings | None:
    """How the picks' soft labels are learned (`synthesize.labels`), for the run's soft-label
    probe: its C (1 when it is `cv`) and temperature; None when they are not (`learn`: whether
    they are, default `synthesize.labels.learn`)."""
    if not (cfg.synthesize.labels.learn if learn is None else learn):
        return None
    return LabelSettings(target_rows=cfg.synthesize.labels.target_rows, c=_probe_c(cfg),
                         temperature=float(probe_spec(cfg).temperature))


def labels_summary(settings: LabelSettings, result: CandidateSet, per_class: int
                   ) -> dict[str, Any]:
    """The manifest's account of learned labels: the settings and, per replicate, the mean
    probability the picks' labels give their own class and how many give another class the
    most (the reserve's labels are one-hot)."""
    table = result.candidates
    table = table.filter(pc.less(table.column("rank"), per_class))
    by_replicate = {}
    for replicate in sorted(set(table.column("replicate").to_pylist())):
        mine = table.filter(pc.equal(table.column("replicate"), replicate))
        soft = np.asarray(mine.column("soft_label").to_pylist(), dtype=np.float64)
        own = mine.column("label_id").to_numpy()
        by_replicate[str(replicate)] = {
            "mean_own_probability": round(float(soft[np.arange(len(own)), own].mean()), 4),
            "rows_led_by_another_class": int((soft.argmax(axis=1) != own).sum())}
    return {**asdict(settings), "target_c": TARGET_C, "by_replicate": by_replicate}


def weights_summary(settings: WeightSettings, result: CandidateSet, per_class: int
                    ) -> dict[str, Any]:
    """The manifest's account of learned weights: the settings and, per replicate, the
    smallest and largest weight of the picks (rank < per_class; the reserve weighs 1)."""
    table = result.candidates
    table = table.filter(pc.less(table.column("rank"), per_class))
    spread = {}
    for replicate in sorted(set(table.column("replicate").to_pylist())):
        mine = table.filter(pc.equal(table.column("replicate"), replicate))
        w = mine.column("weight").to_numpy()
        spread[str(replicate)] = [round(float(w.min()), 4), round(float(w.max()), 4)]
    return {**asdict(settings), "min_max_by_replicate": spread}


def _classes(ctx: StageContext) -> int:
    """The corpus's number of classes (the width of a soft label)."""
    return len(label_names(ctx.store))


def _select_one(inputs: SelectionInputs | StreamedSelection, seed: int) -> Selection:
    return inputs.select(seed)


class SelectionFamily:
    def synthesize(self, ctx: StageContext, method: Method) -> tuple[CandidateSet, dict[str, Any]]:
        """One candidate set per seed, and the manifest's notes (pool, workers)."""
        if (method.name in STREAMED_METHODS and not synthesis_reads_teacher(ctx.cfg)
                and not ctx.cfg.synthesize.weights.learn
                and not ctx.cfg.synthesize.labels.learn):
            return self._streamed(ctx, method)
        return self.in_memory(ctx, method)

    def _run_seeds(self, ctx: StageContext, workers: dict[str, str]):
        def selector(shared: Any, seeds: list[int]) -> list[Selection]:
            done = ctx.executor.map_tasks(_select_one, seeds, ctx.resources, shared)
            workers.update({str(s): where for s, (_, where) in zip(seeds, done, strict=True)})
            return [selection for selection, _ in done]

        return selector

    def _streamed(self, ctx: StageContext, method: Method
                  ) -> tuple[CandidateSet, dict[str, Any]]:
        cfg = ctx.cfg
        spill = ctx.store.scratch("synthesize-spill")
        try:
            pool = streamed_pool(cfg, ctx.store, None if method.name == "random" else spill)
            classes = pool.classes
            if classes is not None and pool.feature_mean is not None and run_centres_features(cfg):
                classes = {label: rows.centered_on(pool.feature_mean)
                           for label, rows in classes.items()}
            inputs = StreamedSelection(method.name, pool.label_ids, classes,
                                       cfg.synthesize.per_class,
                                       cfg.synthesize.options().params(),
                                       cfg.synthesize.oversample)
            workers: dict[str, str] = {}
            result = select_candidates(pool.rows, inputs, cfg.run.seeds, ctx.store.run_id,
                                       selector=self._run_seeds(ctx, workers))
        finally:
            shutil.rmtree(spill, ignore_errors=True)
        return result, {"pool": "clean" if cfg.filter.corpus else "train", "workers": workers,
                        "selection": {"streamed": True, "stream_above_rows": STREAM_ABOVE_ROWS,
                                      "minibatch_epochs": EPOCHS,
                                      "minibatch_seed_rows": SAMPLE_ROWS,
                                      "per_class": inputs.algorithms()}}

    def in_memory(self, ctx: StageContext, method: Method, keep: PoolMask | None = None
                   ) -> tuple[CandidateSet, dict[str, Any]]:
        """`keep(rows, features)`: which pool rows the method may pick (None: all of them)."""
        cfg = ctx.cfg
        use_teacher = synthesis_reads_teacher(cfg)
        pool = in_memory_pool(cfg, ctx.store)
        train, train_x, sample, pool_rows = pool.train, pool.features, pool.sample, pool.pool_rows
        positions = pool.positions
        del pool  # a masked copy of the features then replaces them rather than adds to them
        if keep is not None:
            mask = np.asarray(keep(train, train_x), dtype=bool)
            train, train_x, positions = (train.filter(pa.array(mask)), train_x[mask],
                                         positions[mask])
        probe_x = None
        if run_centres_features(cfg) and len(train_x):
            learns = cfg.synthesize.weights.learn or cfg.synthesize.labels.learn
            probe_x = train_x if learns else None  # the learners' own features
            train_x = centered(train_x, train_x.mean(axis=0, dtype=np.float64))
        teacher = (teacher_at(ctx.store, positions, train.column("example_id"),
                              cfg.teacher.temperature) if use_teacher else None)
        inputs = SelectionInputs(
            method.name, train_x, train.column("label_id").to_numpy(), cfg.synthesize.per_class,
            cfg.synthesize.options().params(),
            grad_logits=None if teacher is None else teacher.grad_logits,
            el2n=None if teacher is None else teacher.el2n,
            grad_features=None if teacher is None else teacher.features,
            oversample=cfg.synthesize.oversample, weights=weight_settings(cfg),
            probe_features=probe_x, labels=label_settings(cfg), n_classes=_classes(ctx))
        workers: dict[str, str] = {}
        result = select_candidates(
            train, inputs, cfg.run.seeds, ctx.store.run_id,
            soft_labels=teacher.soft_labels if cfg.synthesize.soft_labels and teacher else None,
            selector=self._run_seeds(ctx, workers))
        notes: dict[str, Any] = {"pool": "clean" if cfg.filter.corpus else "train",
                                 "workers": workers, "selection": {"streamed": False}}
        if sample is not None:  # the rows outside the sample: never selected
            count_not_selected(result, pool_rows - sample["rows"])
            notes["selection"]["pool_sample"] = sample
        if inputs.weights is not None:
            notes["learned_weights"] = weights_summary(inputs.weights, result,
                                                       cfg.synthesize.per_class)
        if inputs.labels is not None:
            notes["learned_labels"] = labels_summary(inputs.labels, result,
                                                     cfg.synthesize.per_class)
        return result, notes


SELECTION = SelectionFamily()
