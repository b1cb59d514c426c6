"""Every method on instruction data: the pool ranked by `instruct.methods`, one set per seed.

The pool is the corpus's training rows (the evaluation split never enters it).
The budget is `synthesize.budget` (a fraction of the pool below 1, else a row
count; default 5 %); each seed's ranking is cut to budget x `oversample` rows:
the budget, then the reserve the filter stage refills from. Inputs per method:
`random` a seeded permutation; `kmeans` k-means prototypes of the prompt
embeddings (the signals stage's `embedding` column); `longest` the responses'
lengths (no model); `ifd` the reference decoder's IFD (`teacher` stage); `deita`
IFD with a cosine cap on the prompt embeddings; `less` the projected LoRA
gradients against a seeded target set.
Rankings are cheap next to the signals and run in process. `llm_synth` ranks no
pool: it chooses among the pairs the generate stage wrote (`choose_pairs`, best
of n per k-means slot by the reference decoder's score), its runners-up as the
reserve, every other generated pair a reject with its reason.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from distill_core.artifacts.schemas import SELECTION_SCHEMA, rejects_table
from distill_core.config import RunConfig
from distill_core.generate.candidates import list_matrix, normalised
from distill_core.instruct.methods import (
    RankedInputs,
    Ranking,
    influence_ranking,
    kmeans_ranking,
    longest_ranking,
    quality_diversity_ranking,
    random_ranking,
    score_ranking,
)
from distill_core.instruct.synth import choose_pairs
from distill_core.methods.registry import Method
from distill_core.pipeline.stage import StageContext
from distill_core.signals.embeddings import matrix, require_aligned
from distill_core.synthesize.base import Selection
from distill_core.synthesize.stage import CandidateSet, select_candidates

DEFAULT_BUDGET = 0.05


def budget_rows(cfg: RunConfig, pool: int) -> int:
    """`synthesize.budget` as a row count of a pool of `pool` rows (at least 1, at most all)."""
    value = cfg.synthesize.budget if cfg.synthesize.budget is not None else DEFAULT_BUDGET
    rows = max(1, round(value * pool)) if value < 1 else int(value)
    return min(rows, pool)


def _column(table: pa.Table, name: str, positions: np.ndarray) -> np.ndarray:
    values = table.column(name).take(pa.array(positions)).to_pylist()
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


def _gradients(table: pa.Table, positions: np.ndarray) -> np.ndarray:
    values = table.column("grad_features").take(pa.array(positions)).to_pylist()
    return np.asarray(values, dtype=np.float32)


class InstructionFamily:
    """`synthesize(ctx, method)` for every method on instruction data."""

    def synthesize(self, ctx: StageContext, method: Method
                   ) -> tuple[CandidateSet, dict[str, Any]]:
        if method.generative:
            return self.choose_generated(ctx, method)
        cfg, store = ctx.cfg, ctx.store
        corpus, embeddings = store.read("ingest"), store.read("signals")
        require_aligned(corpus, embeddings)
        is_train = np.asarray(corpus.column("split").to_pylist()) == "train"
        positions = np.flatnonzero(is_train)
        pool = corpus.take(pa.array(positions))
        budget = budget_rows(cfg, len(positions))
        ranked = min(len(positions), budget * cfg.synthesize.oversample)
        options = cfg.synthesize.options()
        teacher = store.read("teacher") if "teacher" in method.needs else None
        if teacher is not None:  # read by corpus position: it must list the corpus's rows
            require_aligned(corpus, teacher)
        prompts = matrix(embeddings, "embedding")[positions]

        def rank(seed: int) -> Ranking:
            n = len(positions)
            if method.name == "random":
                return random_ranking(n, budget, seed, ranked)
            if method.name == "kmeans":
                return kmeans_ranking(prompts, budget, seed, ranked, n_init=options.n_init,
                                      max_iter=options.max_iter, threads=options.threads)
            if method.name == "longest":
                return longest_ranking(pool.column("text_pair").to_pylist(), budget, ranked)
            assert teacher is not None
            if method.name == "ifd":
                return score_ranking(_column(teacher, "ifd", positions), budget, ranked,
                                     max_score=options.max_score)
            if method.name == "deita":
                return quality_diversity_ranking(
                    _column(teacher, "ifd", positions), prompts, budget,
                    max_cosine=options.max_cosine, ranked=ranked, max_score=options.max_score)
            if method.name == "less":
                return influence_ranking(_gradients(teacher, positions), budget, seed,
                                         target_size=options.target_size, ranked=ranked)
            raise ValueError(f"method {method.name!r} does not run on instruction data")

        def selector(inputs: RankedInputs, seeds: list[int]) -> list[Selection]:
            out = []
            for done, seed in enumerate(seeds):
                out.append(inputs.select(seed))
                ctx.report(done + 1, len(seeds), method.name)
            return out

        result = select_candidates(pool, RankedInputs(method.name, cfg.synthesize.oversample,
                                                      rank),
                                   cfg.run.seeds, store.run_id, selector=selector)
        return result, {"pool": "train", "budget_rows": budget, "ranked_rows": ranked,
                        "pool_rows": int(len(positions))}

    def choose_generated(self, ctx: StageContext, method: Method
                         ) -> tuple[CandidateSet, dict[str, Any]]:
        """`llm_synth`: per replicate, the best pair of each slot, then the reserve."""
        cfg, store = ctx.cfg, ctx.store
        pool_rows = int((store.manifest("ingest") or {})["counts"]["rows_by_split"]["train"])
        budget = budget_rows(cfg, pool_rows)
        generated = store.read("generate")
        replicate = generated.column("replicate").to_numpy()
        slots = generated.column("slot").to_numpy()
        vectors = normalised(list_matrix(generated, "prompt_embedding", np.float32))
        similarity = generated.column("shot_similarity").to_numpy()
        criterion = cfg.instruct.synth.criterion
        score = _column(generated, "conditioned_loss" if criterion == "loss" else "ifd",
                        np.arange(generated.num_rows))
        picked: list[tuple[int, int]] = []  # (generated row, rank)
        reasons: dict[int, str] = {}
        filled: list[int] = []  # slots with a winner, per replicate
        for rep in range(len(cfg.run.seeds)):
            rows = np.flatnonzero(replicate == rep)
            choice = choose_pairs(slots[rows], vectors[rows], similarity[rows], score[rows],
                                  cfg.generate.max_similarity,
                                  budget * (cfg.synthesize.oversample - 1))
            picked += [(int(rows[i]), rank)
                       for rank, i in enumerate(choice.chosen + choice.reserve)]
            reasons.update({int(rows[i]): why for i, why in choice.reasons.items()})
            filled.append(len(choice.chosen))
            ctx.report(rep + 1, len(cfg.run.seeds), f"{len(choice.chosen)} slots filled")
        chosen = generated.take(pa.array([r for r, _ in picked], pa.int64()))
        n = chosen.num_rows
        seeds = [cfg.run.seeds[int(r)] for r in chosen.column("replicate").to_pylist()]
        candidates = pa.table({
            **{c: chosen.column(c) for c in ("example_id", "replicate", "text", "text_pair",
                                             "label", "label_id", "parent_ids", "method")},
            "run_id": pa.array([store.run_id] * n, pa.string()),
            "seed": pa.array(seeds, pa.int64()),
            "rank": pa.array([rank for _, rank in picked], pa.int32()),
            "score": pa.array([float(score[r]) for r, _ in picked], pa.float64()),
            "weight": pa.array(np.ones(n), pa.float64()),
            "soft_label": pa.nulls(n, pa.list_(pa.float32()))}, schema=SELECTION_SCHEMA)
        ids, prompt_ids = (generated.column(c).to_pylist() for c in ("example_id", "prompt_id"))
        rejects = [{"example_id": ids[i], "replicate": int(replicate[i]), "split": "generated",
                    "reason": why, "detail": f"{method.name} {prompt_ids[i]} ({criterion} "
                    f"{score[i]:.4f})"} for i, why in sorted(reasons.items())]
        if n + len(rejects) != generated.num_rows:
            raise RuntimeError(f"generated pairs not all accounted for: {n} chosen + "
                               f"{len(rejects)} rejected != {generated.num_rows}")
        shortfall = {rep: {0: {"available": f, "budget": budget}}
                     for rep, f in enumerate(filled) if f < budget}
        counts = {"rows_in": generated.num_rows, "rows_out": n, "rows_rejected": len(rejects),
                  "rejects_by_reason": dict(Counter(r["reason"] for r in rejects)),
                  "replicates": len(cfg.run.seeds)}
        return (CandidateSet(candidates, rejects_table(rejects), counts, shortfall),
                {"pool": "generate", "budget_rows": budget, "ranked_rows": n,
                 "pool_rows": pool_rows, "criterion": criterion, "slots_filled": filled})


INSTRUCTION = InstructionFamily()
