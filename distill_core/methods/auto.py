"""`synthesize.method: auto`: cross-validate the recipes on the training pool, run the winner.

The cross-validation (`synthesize/auto_cv.py`) reads only a stratified sample of the pool
(training rows, after the corpus filters when on), gathered here by corpus position from
the pool the selection itself draws on; the evaluation split is never read. The chosen
recipe then runs on the whole pool as that method runs on its own (streamed where it
streams), so the candidates' `method` and lineage are the chosen method's; a
teacher-consistent recipe drops the rows its teacher disputes first (counted with the
replicate's `not_selected` rows: they were not eligible). The manifest's `auto` block
holds the choice, every recipe's cross-validated accuracies and the protocol.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.config import RunConfig
from distill_core.errors import ArtifactError
from distill_core.learners.data import LearnerData, TrainingRows
from distill_core.learners.probe import train_linear_probe
from distill_core.learners.spec import as_spec
from distill_core.methods.registry import Method, get_method
from distill_core.methods.selection import SELECTION, label_settings, weight_settings
from distill_core.pipeline.inputs import IN_MEMORY_POOL_ROWS, corpus_where, streamed_pool
from distill_core.pipeline.stage import StageContext
from distill_core.signals.teacher import class_logits, fit_teacher, softmax
from distill_core.synthesize.auto_cv import (
    RECIPES,
    AutoChoice,
    AutoSettings,
    consistent_rows,
    cross_validate,
    probe_spec,
    recipe_parts,
)
from distill_core.synthesize.fold_workers import (
    fold_map,
    fold_workers,
    release_fold_workers,
    worker_settings,
)
from distill_core.synthesize.stage import CandidateSet, count_not_selected

PROBE_ONLY_SELECTORS = ("span_pursuit",)  # rows chosen for learned labels on the probe


def other_learners(cfg: RunConfig) -> list[str]:
    """The run's learners other than the linear probe on frozen features: they train what
    the probe-made labels and spans were not solved for (benchmarks/RESULTS.md: under the
    fine-tuned MiniLM, span_pursuit + labels 71.4 against bilevel 74.7 on SST-2)."""
    return sorted({as_spec(entry).kind for entry in cfg.evaluate.learners} - {"linear_probe"})


def settings_for(cfg: RunConfig, pool_rows: int, n_classes: int = 0
                 ) -> tuple[AutoSettings, list[str]]:
    """The cross-validation's settings, and notes on recipes left out (and why)."""
    options, notes = cfg.synthesize.auto, []
    candidates = list(options.candidates)
    others = other_learners(cfg)
    probe_only = [c for c in candidates if RECIPES[c][0] in PROBE_ONLY_SELECTORS]
    if others and probe_only:
        notes.append(f"{', '.join(probe_only)} left out: its rows are chosen for soft labels "
                     f"learned for the linear probe, and evaluate.learners also trains "
                     f"{', '.join(others)}")
        candidates = [c for c in candidates if c not in probe_only] or ["herding"]
    if pool_rows > IN_MEMORY_POOL_ROWS:
        notes.append(f"the pool has {pool_rows} rows, over the in-memory limit of "
                     f"{IN_MEMORY_POOL_ROWS}: a chosen recipe that holds the pool (any but "
                     f"plain kmeans, herding and random, which stream) draws from a seeded, "
                     f"class-stratified sample of {IN_MEMORY_POOL_ROWS} of its rows")
    weights = None
    refills = not cfg.filter.corpus and bool(cfg.filter.enabled_names())
    if options.weighted and refills:
        notes.append("weighted recipes left out: filter.corpus is off, and a pick the filter "
                     "stage drops would be replaced by a row the weights were not solved for")
    elif options.weighted:
        weights = weight_settings(cfg, learn=True)
    labels = None
    if options.labelled and others:
        notes.append(f"labelled recipes left out: their labels are solved for the linear "
                     f"probe, and evaluate.learners also trains {', '.join(others)}")
    elif options.labelled and refills:
        notes.append("labelled recipes left out: filter.corpus is off, and a pick the filter "
                     "stage drops would be replaced by a row the labels were not solved for")
    elif options.labelled and cfg.synthesize.soft_labels:
        notes.append("labelled recipes left out: synthesize.soft_labels gives the set the "
                     "teacher's soft labels")
    elif options.labelled:
        labels = label_settings(cfg, learn=True)
    if cfg.filter.contamination.enabled and not cfg.filter.corpus:
        notes.append("filter.corpus is off: the filter stage will replace chosen rows that "
                     "resemble evaluation texts by later picks the cross-validation never "
                     "scored; filter.corpus: true runs the filters before selection")
    return AutoSettings(candidates=candidates, per_class=cfg.synthesize.per_class,
                        oversample=cfg.synthesize.oversample, folds=options.folds,
                        repeats=options.repeats, max_rows=options.max_rows, tau=options.tau,
                        tie_margin=options.tie_margin,
                        params={"kmeans": cfg.synthesize.kmeans.params(),
                                "facility_location": cfg.synthesize.facility_location.params(),
                                "bilevel": cfg.synthesize.bilevel.params(),
                                "span_pursuit": cfg.synthesize.span_pursuit.params()},
                        weights=weights, labels=labels, n_classes=n_classes), notes


def teacher_p_label(cfg: RunConfig, n_classes: int):
    """p(own label) under a linear-probe teacher fit on the rows it is given (`teacher.C`).
    The function holds numbers only, not the config: it is sent to the fold workers."""
    c, max_iter = cfg.teacher.C, cfg.teacher.max_iter

    def p_label(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        model = fit_teacher(x, y, c, max_iter)
        probs = softmax(class_logits(model, x, n_classes).astype(np.float64))
        return probs[np.arange(len(y)), y]

    return p_label


def probe_accuracy(cfg: RunConfig, n_classes: int):
    spec, labels = probe_spec(cfg), list(range(n_classes))

    def score(x: np.ndarray, y: np.ndarray, held_x: np.ndarray, held_y: np.ndarray,
              seed: int, weights: np.ndarray | None = None, soft: np.ndarray | None = None
              ) -> float:
        return train_linear_probe(spec, TrainingRows(LearnerData([], None, x, y),
                                                     weights=weights, soft=soft),
                                  LearnerData([], None, held_x, held_y), labels,
                                  seed).accuracy

    return score


def ids_digest(ids: list[str]) -> str:
    """sha256 of the sorted example ids, one a line: names the rows the choice saw."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


class AutoRows:
    """The pool's rows the cross-validation may read, loaded by pool index on demand."""

    def __init__(self, cfg: RunConfig, ctx: StageContext) -> None:
        self.store = ctx.store
        self.pool = streamed_pool(cfg, ctx.store, None)
        self.loaded: pa.Table | None = None  # example_id, split of the rows read

    def features(self, indices: np.ndarray) -> np.ndarray:
        """Features of pool rows `indices` (in that order), read by corpus position; every
        row read is checked to be a training row."""
        positions = self.pool.rows.positions[indices]
        wanted = np.sort(positions)

        def pick(rows: pa.Table, start: int) -> np.ndarray:
            at = np.arange(start, start + rows.num_rows)
            return np.isin(at, wanted)

        rows, x, found = corpus_where(self.store, pick, ["example_id", "split", "label_id"])
        if not pc.all(pc.equal(rows.column("split"), "train")).as_py():
            raise ArtifactError("auto: a non-training row reached the cross-validation")
        self.loaded = rows.select(["example_id", "split"])
        return x[np.searchsorted(found, positions)]


class AutoMethod:
    def synthesize(self, ctx: StageContext, method: Method) -> tuple[CandidateSet, dict[str, Any]]:
        cfg = ctx.cfg
        start = time.perf_counter()
        rows = AutoRows(cfg, ctx)
        y = rows.pool.label_ids
        n_classes = len((ctx.store.manifest("ingest") or {}).get("label_names") or []) or (
            int(y.max()) + 1 if len(y) else 1)
        settings, notes = settings_for(cfg, len(y), n_classes)
        workers = fold_workers(cfg.compute.cv_workers, settings.folds * settings.repeats)
        choice = cross_validate(y, rows.features, worker_settings(settings, workers),
                                cfg.run.seeds[0], probe_accuracy(cfg, n_classes),
                                teacher_p_label(cfg, n_classes), fold_map(workers))
        if workers > 1:
            release_fold_workers()
        scored = choice.protocol["repeats"] * choice.protocol["folds"]  # 0: none ran
        workers = min(workers, scored) if scored else 0
        cv_seconds = time.perf_counter() - start
        seen = rows.loaded.column("example_id").to_pylist() if rows.loaded is not None else []
        (candidates, notes_final), extra = self._run(ctx, choice, n_classes)
        block = {**choice.manifest(), "notes": notes, "cv_rows": len(seen),
                 "cv_ids_sha256": ids_digest(seen), "cv_seconds": round(cv_seconds, 3),
                 "cv_workers": workers,
                 "final_seconds": round(time.perf_counter() - start - cv_seconds, 3),
                 **extra}
        return candidates, {**notes_final, "auto": block}

    def _run(self, ctx: StageContext, choice: AutoChoice, n_classes: int):
        cfg = ctx.cfg
        selector, clean, weighted, labelled = recipe_parts(choice.chosen)
        # The recipe runs on the features its cross-validation scored: never centred.
        chosen_cfg = cfg.model_copy(update={"synthesize": cfg.synthesize.model_copy(
            update={"method": selector, "center_features": False,
                    "weights": cfg.synthesize.weights.model_copy(update={"learn": weighted}),
                    "labels": cfg.synthesize.labels.model_copy(update={"learn": labelled})})})
        chosen_ctx = replace(ctx, cfg=chosen_cfg)
        chosen = get_method(selector)
        if not clean:
            return SELECTION.synthesize(chosen_ctx, chosen), {}
        dropped: list[int] = []
        p_label = teacher_p_label(cfg, n_classes)

        def keep(train: pa.Table, x: np.ndarray) -> np.ndarray:
            y = train.column("label_id").to_numpy()
            mask = np.zeros(len(y), dtype=bool)
            mask[consistent_rows(p_label(x, y), y, cfg.synthesize.auto.tau,
                                 cfg.synthesize.per_class * cfg.synthesize.oversample)] = True
            dropped.append(int((~mask).sum()))
            return mask

        candidates, notes = SELECTION.in_memory(chosen_ctx, chosen, keep)
        count_not_selected(candidates, dropped[0])  # the teacher-inconsistent rows
        return (candidates, notes), {"teacher_inconsistent_rows": dropped[0]}


AUTO = AutoMethod()
