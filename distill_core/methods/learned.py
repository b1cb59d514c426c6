"""The learned family: synthetic embeddings optimised by one of the four families (the `learn`
stage), decoded to text; the synthesize stage takes the decoded rows as its candidates.

`learn` runs one distillation per seed through the executor's `run_task` with
the stage's resources (a Ray GPU worker or this process), resumable from
`<run>/.learn/<fingerprint>-seed<seed>.pt`; expert trajectories are cached in
`<runs>/.cache/experts/`. The decoded rows are embedded by the run's encoder
and read by its teacher like generated rows, so the filters, the evaluation and
the audit treat them as any other row. `synthesize` turns them into candidates
with `parent_ids` (the real rows each example was initialised from) and the
learned soft labels; a decoding that left no text is rejected (`empty_decoding`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.schemas import SELECTION_SCHEMA, rejects_table
from distill_core.learned.artifact import STAGE, learned_table
from distill_core.learned.job import LearnJob, run_learn_job
from distill_core.learned.synthetic import SyntheticSet
from distill_core.methods.registry import Method
from distill_core.pipeline.inputs import label_names, selection_pool, teacher_probabilities
from distill_core.pipeline.stage import StageContext, StageOutput
from distill_core.pipeline.stages.signals import encoder_resources
from distill_core.pipeline.static_model import signals_static_dir
from distill_core.signals.readout import embed_texts
from distill_core.signals.static_encoder import base_encoder
from distill_core.synthesize.stage import CandidateSet

FAMILY_OF = {"learned_meta": "meta_matching", "learned_gradient": "gradient_matching",
             "learned_trajectory": "trajectory_matching",
             "learned_distribution": "distribution_matching"}
STATE_DIR = ".learn"


def state_path(root: Path, fingerprint: str, seed: int) -> Path:
    """Where one seed's resumable state lives in the run folder (hidden from `stages()`)."""
    return root / STATE_DIR / f"{fingerprint[:16]}-seed{seed}.pt"


def _drop_stale_states(root: Path, fingerprint: str) -> None:
    """States of other fingerprints (a changed config) can never resume this run."""
    folder = root / STATE_DIR
    if folder.is_dir():
        for path in folder.glob("*.pt"):
            if not path.name.startswith(fingerprint[:16]):
                path.unlink(missing_ok=True)


class LearnedFamily:
    """What the four learned methods share (the family comes from `FAMILY_OF`)."""

    def learn(self, ctx: StageContext, method: Method) -> StageOutput:
        cfg, store = ctx.cfg, ctx.store
        options = cfg.synthesize.options()
        params = options.params()
        train, train_x = selection_pool(cfg, store)
        names = label_names(store)
        # a static signals model is no transformer to learn in: its base encoder is
        model = params["model"] or base_encoder(cfg.signals.model)
        _drop_stale_states(store.root, ctx.fingerprint)
        steps = params["outer_steps"]
        tables, replicates = [], []
        for replicate, seed in enumerate(cfg.run.seeds):
            job = LearnJob(
                family=FAMILY_OF[method.name], options=params, model=model,
                texts=train.column("text").to_pylist(),
                labels=np.array(train.column("label_id").to_numpy()),
                example_ids=train.column("example_id").to_pylist(), features=train_x,
                features_match_learner=model == cfg.signals.model
                and params["pooling"] == "mean",
                label_names=names, per_class=cfg.synthesize.per_class, seed=seed,
                state_path=str(state_path(store.root, ctx.fingerprint, seed)),
                experts_dir=str(store.cache_root / "experts"),
                decoder_model=params["decoder_model"] or cfg.generate.model,
                gpus=ctx.resources.gpus, torch_threads=cfg.compute.torch_threads,
                kill_after=cfg.faults.kill_after_outer_steps, marker_dir=cfg.faults.marker_dir)
            offset = replicate * steps
            result = ctx.executor.run_task(
                run_learn_job, ctx.resources, job,
                progress=lambda done, total, note, o=offset: ctx.report(
                    o + done, total * len(cfg.run.seeds), note))
            tables.append(self._rows(ctx, method, result, replicate, seed, names))
            replicates.append(_replicate_notes(result, seed))
        table = pa.concat_tables(tables)
        extra = {"family": FAMILY_OF[method.name], "decode": params["decode"],
                 "replicates": replicates, "backend": ctx.executor.name,
                 "label_names": names, "model": model}
        return StageOutput(table, Counts.one_to_one(table.num_rows, outer_steps=steps),
                           extra=extra, seeds=cfg.run.seeds)

    def _rows(self, ctx: StageContext, method: Method, result: dict[str, Any], replicate: int,
              seed: int, names: list[str]) -> pa.Table:
        """One replicate's rows: tensors, decoded text, its embedding and teacher reading."""
        from distill_core.learned.decode import Decoded

        cfg = ctx.cfg
        synthetic = SyntheticSet.from_dict(result["synthetic"])
        decoded = [Decoded(d["text"], [], d["score"], d["source_id"]) for d in result["decoded"]]
        texts = [d.text for d in decoded]
        encoders = encoder_resources(cfg.compute)
        vectors = embed_texts(ctx.executor, cfg.signals, texts, encoders, None,
                              signals_static_dir(cfg, ctx.store, ctx.executor, encoders))[0]
        if cfg.teacher.kind == "finetune" and ctx.store.manifest("teacher") is None:
            # No fine-tuned teacher in this run: the probe reads the decoded rows.
            cfg = cfg.model_copy(update={"teacher": cfg.teacher.model_copy(
                update={"kind": "linear_probe"})})
        probs = teacher_probabilities(cfg, ctx.store, ctx.executor, encoders, texts, vectors)
        return learned_table(synthetic, decoded, cfg.synthesize.options().decode, replicate,
                             seed, method.name, ctx.store.run_id, names, vectors, probs)

    def synthesize(self, ctx: StageContext, method: Method) -> tuple[CandidateSet, dict[str, Any]]:
        """The decoded rows as candidates (rank = position in the class); empty ones rejected."""
        learned = ctx.store.read(STAGE)
        return learned_candidates(learned, ctx.cfg.run.seeds, ctx.store.run_id), {
            "pool": STAGE, "workers": None}


def _replicate_notes(result: dict[str, Any], seed: int) -> dict[str, Any]:
    """What the manifest keeps of one seed's distillation (the loss curve included)."""
    losses, step_s = result["losses"], result["step_s"]
    return {"seed": seed, "outer_steps": len(losses), "resumed_from": result["resumed_from"],
            "losses": [round(float(v), 6) for v in losses],
            "step_s": [round(float(v), 4) for v in step_s],
            "mean_step_s": round(float(np.mean(step_s)), 4) if step_s else None,
            "lr": float(np.exp(float(result["synthetic"]["log_lr"]))),
            "device": result["device"], "experts": result["experts"],
            "meta": result["synthetic"]["meta"]}


def learned_candidates(learned: pa.Table, seeds: list[int], run_id: str) -> CandidateSet:
    """Candidates from the `learn` rows: every row with text, in class order; the rest rejected
    (`empty_decoding`). Rows in = learn rows = candidates + rejects."""
    empty = pc.equal(pc.utf8_trim_whitespace(learned.column("text")), "")
    kept = learned.filter(pc.invert(empty))
    dropped = learned.filter(empty)
    n = kept.num_rows
    replicate = kept.column("replicate").to_numpy()
    labels = kept.column("label_id").to_numpy()
    rank = np.zeros(n, dtype=np.int32)
    for key in set(zip(replicate.tolist(), labels.tolist(), strict=True)):
        rows = np.flatnonzero((replicate == key[0]) & (labels == key[1]))
        rank[rows] = np.arange(len(rows))
    candidates = pa.table({
        "example_id": kept.column("example_id"), "replicate": kept.column("replicate"),
        "text": kept.column("text"), "text_pair": kept.column("text_pair"),
        "label": kept.column("label"), "label_id": kept.column("label_id"),
        "parent_ids": kept.column("parent_ids"), "method": kept.column("method"),
        "run_id": pa.array([run_id] * n, pa.string()), "seed": kept.column("seed"),
        "rank": pa.array(rank, pa.int32()), "score": kept.column("decode_score"),
        "weight": pa.array(np.ones(n), pa.float64()),
        "soft_label": kept.column("soft_label").cast(pa.list_(pa.float32())),
    }, schema=SELECTION_SCHEMA)
    rejects = rejects_table([
        {"example_id": row["example_id"], "replicate": row["replicate"], "split": "learned",
         "reason": "empty_decoding", "detail": f"{row['synthetic_id']} ({row['decoding']})"}
        for row in dropped.select(["example_id", "replicate", "synthetic_id", "decoding"])
        .to_pylist()])
    counts = {"rows_in": learned.num_rows, "rows_out": n, "rows_rejected": dropped.num_rows,
              "rejects_by_reason": ({"empty_decoding": dropped.num_rows}
                                    if dropped.num_rows else {}),
              "replicates": len(seeds)}
    return CandidateSet(candidates, rejects, counts, {})


LEARNED = LearnedFamily()
