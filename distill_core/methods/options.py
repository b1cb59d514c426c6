"""Typed options of each distillation method: one pydantic model per method.

They sit under the method's own key in the config (`synthesize: {method: kmeans,
kmeans: {n_init: 3}}`), unknown keys are errors, and only the chosen method's
options enter the run id. Kept free of heavy imports: the config loads them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MethodOptions(BaseModel):
    """Base of every method's options (no options: an empty mapping)."""

    model_config = ConfigDict(extra="forbid")

    def params(self) -> dict[str, Any]:
        """The keyword arguments of the method's function: every option, including the ones
        kept out of the run id (`exclude=True`: how it runs, not what it computes)."""
        return {**self.model_dump(), **{name: getattr(self, name)
                                        for name, spec in type(self).model_fields.items()
                                        if spec.exclude}}


class KmeansOptions(MethodOptions):
    n_init: int = Field(default=3, ge=1, description="k-means++ restarts per class.")
    max_iter: int = Field(default=300, ge=1, description="Lloyd iterations per restart.")
    threads: int | None = Field(
        default=None, ge=1, exclude=True,
        description="Threads for k-means (None: the cores this process may use). Not part of "
                    "the run id: the clustering is the same for any thread count.")


class IfdOptions(MethodOptions):
    max_score: float | None = Field(
        default=1.0, description="Rows with an IFD at or above this rank last (Cherry drops "
        "IFD >= 1: the prompt does not help there); null keeps the plain order.")


class DeitaOptions(MethodOptions):
    max_cosine: float = Field(default=0.9, gt=0, le=1, description="A row is taken only when "
                              "its prompt embedding's cosine to every row taken is below this.")
    max_score: float | None = Field(default=1.0, description="As `ifd.max_score`.")


class LessOptions(MethodOptions):
    target_size: int = Field(default=32, ge=1, description="Rows of the target set (a seeded "
                             "draw from the pool) whose mean gradient the pool is ranked by.")


class FacilityLocationOptions(MethodOptions):
    demand_rows: int = Field(default=4000, ge=1, description="Rows of a class whose coverage "
                             "is maximised (a seeded sample above this).")
    candidate_rows: int = Field(default=8000, ge=1, description="Rows of a class that compete "
                                "(a seeded sample above this; memory: candidate_rows x "
                                "demand_rows x 4 bytes).")


class BilevelOptions(MethodOptions):
    demand_rows: int = Field(default=4000, ge=1, description="Pool rows (all classes, a "
                             "seeded sample above this) on which the set's classifier is "
                             "scored.")
    candidate_rows: int = Field(default=8000, ge=1, description="Rows of a class that may be "
                                "swapped in (a seeded sample above this; memory: "
                                "candidate_rows x demand_rows x 4 bytes).")
    passes: int = Field(default=3, ge=1, description="Sweeps of coordinate descent over the "
                        "picks (fewer when a sweep swaps nothing).")
    shortlist: int = Field(default=64, ge=1, description="Rows per pick tried exactly: those "
                           "whose swap lowers the loss most to first order.")
    standardize: bool = Field(default=True, description="Work on the features z-scored per "
                              "dimension (chosen on training folds: auto's cross-validation "
                              "scores it above raw in every grid cell, benchmarks/RESULTS.md); "
                              "false: the raw features.")
    probe_passes: int = Field(default=2, ge=0, description="Sweeps of swaps tried with the "
                              "evaluation's linear probe itself refitted on the set, on the raw "
                              "features, after the proxy's sweeps (synthesize/probe_refine.py); "
                              "0: none. Chosen on training holdouts of six datasets "
                              "(benchmarks/RESULTS.md): at least plain bilevel in 16 of 18 cells, "
                              "+1.4 to +6.8 points on sentence pairs and SST-5, 2-7x its time.")
    probe_shortlist: int = Field(default=8, ge=1, description="probe_passes: rows per pick "
                                 "tried by refitting the probe, those best to first order.")
    probe_c: float = Field(default=1.0, gt=0, description="probe_passes: the probe's inverse "
                           "L2 strength (the evaluation's linear probe uses C = 1).")


class SpanPursuitOptions(MethodOptions):
    target_rows: int = Field(default=20_000, ge=2, description="Pool rows (a seeded sample "
                             "above this) the target probe is fitted on: the probe whose "
                             "weights the picks' span is chosen to hold (as "
                             "synthesize.labels.target_rows for the labels).")


class El2nOptions(MethodOptions):
    prune_hardest: float = Field(default=0.1, ge=0, lt=1,
                                 description="Fraction of hardest rows dropped first.")


class GradmatchOptions(MethodOptions):
    keep_weights: bool = Field(default=False, description="Keep the matching weights as "
                               "training weights.")
    at: Literal["teacher", "init"] = Field(
        default="init", description="Gradients at initialisation (zero weights; best on SST-2, "
        "see benchmarks/RESULTS.md) or at the trained teacher probe.")


class LlmSynthOptions(MethodOptions):
    shots: int = Field(default=4, ge=1, description="Real examples per prompt (the slot's "
                       "most representative rows).")
    per_answer: int = Field(default=3, ge=1, description="New examples asked per answer.")
    samples_per_slot: int = Field(default=3, ge=1, description="Answers sampled per slot; the "
                                  "best candidate of all wins (best of n).")


class DilmOptions(MethodOptions):
    train_steps: int = Field(default=150, ge=1, description="Generator optimiser steps.")
    train_batch_size: int = Field(default=16, ge=1, description="Sentences per step.")
    train_lr: float = Field(default=5e-4, gt=0, description="AdamW learning rate.")
    train_max_length: int = Field(default=64, ge=8, description="Tokens per sentence.")
    lora_r: int = Field(default=16, ge=0, description="LoRA rank (peft) on every linear layer; "
                        "0 fine-tunes all weights.")
    lora_alpha: int = Field(default=32, ge=1, description="LoRA scaling numerator.")
    candidates_per_class: int = Field(default=100, ge=1, description="Samples per class and "
                                      "replicate before selection.")
    grad_rank: bool = Field(
        default=False, description="Within each k-means cluster, pick the candidate whose "
        "classifier-layer gradient best matches the real class's mean gradient, instead of "
        "the one nearest the centroid.")
    grad_rank_pool: int = Field(default=5, ge=1, description="grad_rank: the cluster's members "
                                "nearest its centroid that compete.")


class LearnedOptions(MethodOptions):
    """What every learned family shares: the learner, the synthetic tensors, the outer and
    inner loops, and the way back to text (`distill_core/learned/`)."""

    model: str | None = Field(default=None, description="The encoder learner the synthetic "
                              "embeddings are optimised for (None: `signals.model`, or the encoder "
                              "a `static:` model is distilled from).")
    pooling: Literal["mean", "cls"] = Field(default="mean", description="Sentence feature "
                                            "of the learner: mean over tokens or the first.")
    last_layers: int | None = Field(default=None, ge=1, description="Train only the last "
                                    "layers of the encoder (and the head); None: all of it.")
    outer_steps: int = Field(default=200, ge=1, description="Outer optimisation steps.")
    inner_steps: int = Field(default=1, ge=1, description="Inner gradient steps (k) of the "
                             "learner on the synthetic set.")
    head_init: Literal["zero", "random"] = Field(
        default="zero", description="The fresh head of learned_meta's inner learner, of the "
        "embeds_finetune evaluation and of the matched-sentence decoding (gradient, "
        "trajectory and distribution matching draw random heads): zero (one step on the "
        "synthetic set makes it a soft-label-weighted sum of their features; the encoder moves "
        "only through attention labels or later steps) or random (nn.Linear's init). "
        "benchmarks/RESULTS.md: a random head with a 1-step protocol did not learn.")
    lr: float = Field(default=1.0, gt=0, description="Initial learned learning rate of the "
                      "inner step (optimised with the data).")
    lr_embeds: float = Field(default=3e-3, gt=0, description="Adam lr of the embeddings "
                             "(embedding units).")
    lr_labels: float = Field(default=1e-2, gt=0, description="Adam lr of the soft labels "
                             "and the attention labels.")
    lr_lr: float = Field(default=5e-2, gt=0, description="Adam lr of the log of the learned "
                         "learning rate.")
    attention_labels: bool = Field(default=False, description="Learn target attention "
                                   "distributions of the first token (Maekawa et al. 2023). "
                                   "They make the inner step move the encoder, so each outer "
                                   "step runs the real batch through it: 8-64x the cost of a "
                                   "step without them on CPU. Measured (benchmarks/RESULTS.md): "
                                   "+2.0 to +2.6 points on SST-2's validation at 5 per class as "
                                   "embeddings but -1.6 as matched text; on held-out training "
                                   "rows at 1 per class +0.6 on AG News and +0.7 on SST-2 "
                                   "(3 seeds each). The text default falls back to "
                                   "nearest_sentence. Worth it for meta-matching's tensors, "
                                   "not the text; on SST-2 at 1 per class trajectory matching "
                                   "+0.4, gradient matching -2.1, distribution matching -7.3 "
                                   "(its loss gives them no gradient: they stay the "
                                   "prototypes' own attention).")
    attention_weight: float = Field(default=1.0, ge=0, description="λ of the attention KL.")
    init: Literal["kmeans", "noise"] = Field(
        default="kmeans", description="kmeans: each class's k-means prototypes on the run's "
        "embeddings (lineage = those rows); noise: random embeddings (no lineage).")
    label_smoothing: float = Field(default=0.1, ge=0, lt=1, description="Initial soft labels.")
    seq_len: int = Field(default=32, ge=4, le=512, description="Tokens per synthetic example.")
    max_length: int = Field(default=64, ge=8, le=512, description="Tokens kept per real row.")
    batch_size: int = Field(default=64, ge=1, description="Real rows per outer step.")
    init_pool: int = Field(default=0, ge=0, description="Distinct random learner draws the "
                           "outer steps cycle through (0: a new one each step).")
    decode: Literal["matched_sentence", "nearest_sentence", "nearest_token", "decoder"] = Field(
        default="matched_sentence", description="Back to text: the real sentence of the class "
        "that, in the example's place, gives the learner trained on the set the lowest loss on "
        "the training pool (one step from a zero head without attention labels only; left "
        "unset with another protocol, the default is nearest_sentence); the nearest real "
        "sentence of the class; the nearest token per position; or a beam search scored by a "
        "causal LM (`decoder_model`) staying near the learned embeddings. "
        "benchmarks/RESULTS.md, SST-2 at 5 per class: matched text 76.1 against 66.2 for the "
        "nearest sentence; the nearest tokens give back the k-means prototypes (69.8) and the "
        "decoder's fluency edits score as they do (70.0).")
    match_shortlist: int = Field(default=256, ge=1, description="decode=matched_sentence: "
                                 "the real rows of the class nearest each example that "
                                 "compete for its place.")
    decoder_model: str | None = Field(default=None, description="decode=decoder: the causal "
                                      "LM (None: `generate.model`).")
    decoder_weight: float = Field(default=0.1, ge=0, description="decode=decoder: λ of the "
                                  "LM log-probability.")
    save_every: int = Field(
        default=10, ge=1, exclude=True, description="Save the resumable state every this many "
        "outer steps (a killed run continues from the last save). Not part of the run id.")

    @model_validator(mode="after")
    def _matched_needs_the_one_step_protocol(self) -> LearnedOptions:
        one_step = (self.inner_steps == 1 and self.head_init == "zero"
                    and not self.attention_labels)
        if self.decode == "matched_sentence" and not one_step:
            if "decode" not in self.model_fields_set:  # the default follows the protocol
                self.decode = "nearest_sentence"
                return self
            raise ValueError("decode: matched_sentence scores rows with the one-step learner "
                             "from a zero head without attention labels; set inner_steps: 1, "
                             "head_init: zero, attention_labels: false, or another decode")
        return self


class LearnedMetaOptions(LearnedOptions):
    batch_size: int = Field(default=256, ge=1, description="Real rows per outer step. Without "
                            "attention labels (one step from a zero head) the real features are "
                            "computed once and a batch costs a matrix product; with them each "
                            "row goes through the encoder (64 is the practical size on CPU).")


class LearnedGradientOptions(LearnedOptions):
    last_layers: int | None = Field(default=1, ge=1, description="Gradients matched on the "
                                    "last layers of the encoder and the head.")


class LearnedTrajectoryOptions(LearnedOptions):
    last_layers: int | None = Field(default=1, ge=1, description="The trainable part the "
                                    "experts and the synthetic steps share.")
    experts: int = Field(default=2, ge=1, description="Expert trajectories (cached in the runs "
                         "folder's cache by what determines them).")
    expert_checkpoints: int = Field(default=10, ge=2, description="Checkpoints per expert.")
    expert_interval: int = Field(default=10, ge=1, description="SGD steps between them.")
    expert_lr: float = Field(default=1e-2, gt=0, description="Experts' SGD learning rate.")
    expert_span: int = Field(default=2, ge=1, description="Checkpoints ahead the synthetic "
                             "steps must reach (M). embeds_finetune scores the set by "
                             "replaying its steps over the whole trajectory: inner_steps x "
                             "ceil(expert_checkpoints / M) steps from a fresh head_init head "
                             "(benchmarks/RESULTS.md: on SST-2's held-out training rows 78.3 "
                             "against 69.3 for one step).")


class LearnedDistributionOptions(LearnedOptions):
    perturbation: Literal["noise", "dropout", "none"] = Field(
        default="noise", description="How the encoder is randomised at each outer step.")
    noise_scale: float = Field(default=0.05, ge=0, description="noise: relative std.")


AutoRecipe = Literal["herding", "kmeans", "tc_herding", "tc_kmeans", "span_pursuit",
                     "facility_location", "tc_facility_location", "bilevel", "tc_bilevel"]


class AutoOptions(MethodOptions):
    """`auto`: the recipe chosen by cross-validation on the training pool alone
    (`synthesize/auto_cv.py` states the protocol)."""

    candidates: list[AutoRecipe] = Field(
        default=["herding", "kmeans", "tc_herding", "tc_kmeans", "span_pursuit", "bilevel",
                 "tc_bilevel"],
        min_length=1,
        description="Recipes that compete: herding, kmeans, bilevel, and each on a "
        "teacher-consistent pool (tc_: rows whose label a linear-probe teacher fit on that "
        "pool gives p < tau are dropped first), and span_pursuit (the rows for learned soft "
        "labels: its labelled twin is the one meant to win); facility_location and "
        "tc_facility_location can be added (benchmarks/RESULTS.md: not better on average). "
        "A tie goes to the cheaper, in this order.")
    folds: int = Field(default=3, ge=2, le=10, description="Stratified folds of the sampled "
                       "pool: each is held out once while the others are distilled.")
    repeats: int = Field(default=3, ge=1, le=10, description="Seeded draws of the sample and "
                         "its folds (each also seeds the recipes).")
    max_rows: int = Field(default=4000, ge=100, description="Training rows sampled (stratified) "
                          "for the cross-validation; the chosen recipe then runs on the whole "
                          "pool.")
    tau: float = Field(default=0.8, ge=0, le=1, description="tc_ recipes: the teacher's minimum "
                       "p(label) for a row to stay in the pool.")
    tie_margin: float = Field(default=0.0, ge=0, lt=1, description="Mean accuracies within this "
                              "of the best count as a tie (fraction, not points).")
    weighted: bool = Field(default=True, description="Every recipe also competes with learned "
                           "per-example weights on its picks (`synthesize.weights`' settings; "
                           "a weighted twin ranks just after its recipe in cost); false: "
                           "unweighted recipes only.")
    labelled: bool = Field(default=True, description="Every recipe also competes with learned "
                           "soft labels on its picks (`synthesize.labels`' settings; scored by "
                           "the soft-label probe; a labelled twin ranks after the weighted "
                           "one; left out, with span_pursuit, when evaluate.learners trains "
                           "more than the linear probe: they are made for it); false: none.")
