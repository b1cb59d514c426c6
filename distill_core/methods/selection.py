"""The selection family: real training rows chosen per class by the selector of the same name
(`distill_core/synthesize/`), one set per seed, the seeds run by the executor; each class
ranked to `synthesize.oversample` times the budget (the filter stage's reserve)."""

from __future__ import annotations

from typing import Any

from distill_core.methods.registry import Method
from distill_core.pipeline.inputs import selection_pool, teacher_view
from distill_core.pipeline.stage import StageContext
from distill_core.pipeline.stages.teacher import synthesis_reads_teacher
from distill_core.synthesize.base import Selection
from distill_core.synthesize.stage import CandidateSet, SelectionInputs, select_candidates


def _select_one(inputs: SelectionInputs, seed: int) -> Selection:
    return inputs.select(seed)


class SelectionFamily:
    def synthesize(self, ctx: StageContext, method: Method) -> tuple[CandidateSet, dict[str, Any]]:
        """One candidate set per seed, and the manifest's notes (pool, workers)."""
        cfg = ctx.cfg
        train, train_x = selection_pool(cfg, ctx.store)
        use_teacher = synthesis_reads_teacher(cfg)
        teacher = (teacher_view(ctx.store, train.column("example_id").to_pylist(),
                                cfg.teacher.temperature) if use_teacher else None)
        inputs = SelectionInputs(
            method.name, train_x, train.column("label_id").to_numpy(), cfg.synthesize.per_class,
            cfg.synthesize.options().params(),
            grad_logits=None if teacher is None else teacher.grad_logits,
            el2n=None if teacher is None else teacher.el2n,
            grad_features=None if teacher is None else teacher.features,
            oversample=cfg.synthesize.oversample)
        workers: dict[str, str] = {}

        def selector(shared: SelectionInputs, seeds: list[int]) -> list[Selection]:
            done = ctx.executor.map_tasks(_select_one, seeds, ctx.resources, shared)
            workers.update({str(s): where for s, (_, where) in zip(seeds, done, strict=True)})
            return [selection for selection, _ in done]

        result = select_candidates(
            train, inputs, cfg.run.seeds, ctx.store.run_id,
            soft_labels=teacher.soft_labels if cfg.synthesize.soft_labels and teacher else None,
            selector=selector)
        return result, {"pool": "clean" if cfg.filter.corpus else "train", "workers": workers}


SELECTION = SelectionFamily()
