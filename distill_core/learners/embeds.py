"""`embeds_finetune` as an evaluate learner: the encoder trained on a learned run's synthetic
embeddings under the exact inner protocol of the distillation, scored on the evaluation texts.

Same encoder, trainable part and pooling as the distillation, a fresh head
from the fit's seed, plain gradient steps with the learned lr, soft labels and
attention labels (`distill_core.learned.learner.embeds_finetune`): `inner_steps`
of them, or for trajectory matching the replay of those steps over the experts'
trajectory (`distill_core.methods.learned_protocol`).
It reads `TrainingRows.synthetic` (a `LearnedRows`), which only a learned
run's distilled sets carry: the evaluate stage gives it no other fit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from distill_core.evaluate.linear_probe import ProbeScore
    from distill_core.learned.synthetic import SyntheticSet
    from distill_core.learners.data import LearnerData, TrainingRows
    from distill_core.learners.spec import LearnerSpec


LEARN_STAGE = "learn"  # `distill_core.learned.artifact.STAGE`, named here without its imports


@dataclass
class LearnedRows:
    """One replicate's synthetic set (the rows whose decoded text the filters kept) and the
    protocol it was distilled for."""

    synthetic: SyntheticSet
    model: str
    pooling: str
    last_layers: int | None
    steps: int  # on the synthetic set (`methods.learned_protocol.evaluation_steps`)
    attention_weight: float
    max_length: int
    head_init: str = "random"


def train_embeds_finetune(spec: LearnerSpec, rows: TrainingRows, evaluation: LearnerData,
                          labels: list[int], seed: int) -> ProbeScore:
    """Train under the inner protocol on `rows.synthetic`; accuracy on `evaluation`."""
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    from distill_core.evaluate.linear_probe import ProbeScore
    from distill_core.learned.inner import InnerConfig
    from distill_core.learned.job import load_learner
    from distill_core.learned.learner import embeds_finetune, predict
    from distill_core.learned.real import RealData

    learned: Any = rows.synthetic
    if learned is None:
        raise ValueError("embeds_finetune trains on a learned method's synthetic embeddings; "
                         "this set has none")
    start = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    learner, tokenizer = load_learner(learned.model, len(labels), learned.pooling,
                                      learned.last_layers, device)
    synthetic = learned.synthetic.to(device)
    inner = InnerConfig(steps=learned.steps, attention_weight=learned.attention_weight,
                        head_init=learned.head_init)
    params = embeds_finetune(learner, synthetic, inner, head_seed=seed)
    real = RealData.from_texts(tokenizer, evaluation.texts, np.array(evaluation.y),
                               [str(i) for i in range(len(evaluation.texts))],
                               max_length=learned.max_length, device=device)
    predicted = predict(learner, params, real).numpy()
    return ProbeScore(
        accuracy=float(accuracy_score(evaluation.y, predicted)),
        macro_f1=float(f1_score(evaluation.y, predicted, labels=labels, average="macro",
                                zero_division=0)),
        n_train=len(synthetic), wall_time_s=round(time.perf_counter() - start, 3),
        converged=True, note=f"{inner.steps} step{'s' if inner.steps != 1 else ''} on the "
                             f"synthetic set, learned lr {float(synthetic.lr.detach()):.4g}")


def protocol_of(learn_manifest: dict[str, Any]) -> dict[str, Any]:
    """What `embeds_finetune` runs on a learned run's sets, from its `learn` manifest: the
    learner (model, pooling, trainable layers, max length) and the steps, head and attention
    weight of its training (`methods.learned_protocol.evaluation_steps`). Part of the identity of
    any score it makes (the bench grid's cells)."""
    from distill_core.methods.learned_protocol import evaluation_steps

    options = learn_manifest["stage_config"]["options"]
    return {"model": learn_manifest["model"], "pooling": options["pooling"],
            "last_layers": options["last_layers"],
            "steps": evaluation_steps(learn_manifest.get("family", ""), options),
            "attention_weight": options["attention_weight"],
            "max_length": options["max_length"],
            "head_init": options.get("head_init", "random")}


@dataclass
class LearnedSource:
    """A learned run's synthetic sets per replicate, each row's decoded `example_id`, and the
    protocol (from the `learn` stage's manifest)."""

    sets: dict[int, SyntheticSet]
    decoded_ids: dict[int, list[str]]
    protocol: dict[str, Any]

    @classmethod
    def from_store(cls, store: Any) -> LearnedSource | None:
        """None when the run has no `learn` stage."""
        manifest = store.manifest(LEARN_STAGE)
        if manifest is None:  # before importing the learned families (and torch)
            return None
        import pyarrow.compute as pc

        from distill_core.learned.artifact import learned_sets

        table = store.read(LEARN_STAGE)
        sets = learned_sets(table, manifest.get("replicates") or [])
        ids = {r: table.filter(pc.equal(table.column("replicate"), r)).column(
            "example_id").to_pylist() for r in sets}
        return cls(sets, ids, protocol_of(manifest))

    def rows_for(self, replicate: int, example_ids: list[str]) -> LearnedRows | None:
        """The replicate's synthetic examples whose decoded rows are among `example_ids` (the
        distilled set after the filters), with the protocol; None when there are none."""
        import torch

        from distill_core.learned.synthetic import SyntheticSet

        if replicate not in self.sets:
            return None
        kept = set(example_ids)
        rows = [i for i, e in enumerate(self.decoded_ids[replicate]) if e in kept]
        if not rows:
            return None
        data = self.sets[replicate].to_dict()
        index = torch.as_tensor(rows, dtype=torch.long)
        for key in ("embeds", "mask", "labels", "label_logits", "attention_logits"):
            if data[key] is not None:
                data[key] = data[key][index]
        data["parent_ids"] = [data["parent_ids"][i] for i in rows]
        data["example_ids"] = [data["example_ids"][i] for i in rows]
        return LearnedRows(SyntheticSet.from_dict(data), **self.protocol)
