"""The one list of distillation methods: name, family, what each needs, its options.

The pipeline runs only the stages a method needs (`teacher`, `generate`), the
config validates `synthesize.method` and the method's options from here, and
the benchmark's method list defaults to the selection family. The work itself
lives in the family's implementation (`selection`, `generative`), loaded when a
stage runs, so reading the registry stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Literal

from distill_core.methods.options import (
    AutoOptions,
    BilevelOptions,
    DeitaOptions,
    DilmOptions,
    El2nOptions,
    FacilityLocationOptions,
    GradmatchOptions,
    IfdOptions,
    KmeansOptions,
    LearnedDistributionOptions,
    LearnedGradientOptions,
    LearnedMetaOptions,
    LearnedTrajectoryOptions,
    LessOptions,
    LlmSynthOptions,
    MethodOptions,
    SpanPursuitOptions,
)

Need = Literal["teacher", "generate", "learn"]
Family = Literal["selection", "generative", "learned", "auto", "instruction"]
Task = Literal["classification", "instruction"]
CLASSIFICATION: frozenset[Task] = frozenset({"classification"})
BOTH: frozenset[Task] = frozenset({"classification", "instruction"})


@dataclass(frozen=True)
class Method:
    """One way to make the distilled set.

    Attributes:
        name: the key in `synthesize.method`.
        family: `selection` (real rows chosen), `generative` (a decoder writes them),
            `learned` (synthetic embeddings optimised, then decoded to text), `auto` (one of
            the selection recipes, chosen by cross-validation on the training pool) or
            `instruction` (instruction rows ranked by a reference decoder's signals).
        needs: upstream stages beyond ingest and signals that must run for it (for
            instruction data, `teacher` is the reference decoder's signals).
        tasks: the task kinds (`data.task`) it runs on; on instruction data every method
            ranks the pool through `distill_core/instruct/methods.py`.
        options: its typed options model (the config's `synthesize.<name>`).
        summary: one line for `--help`, `plan` and the docs.
        also_options: other methods whose options it runs with (their keys enter the run id).
    The implementation: `methods/selection.py` for the selection family (the selector of the
    same name in `synthesize/`; `auto`: `methods/auto.py`), `methods/generative.py`'s `<NAME>`
    for a generative one, `methods/learned.py`'s `LEARNED` for a learned one (the family in
    `learned/`).
    """

    name: str
    family: Family
    summary: str
    needs: frozenset[Need] = field(default_factory=frozenset)
    options: type[MethodOptions] = MethodOptions
    tasks: frozenset[Task] = CLASSIFICATION
    also_options: tuple[str, ...] = ()

    def implementation(self) -> Any:
        """The object that does the work: `synthesize(ctx, method)` for every method and
        `generate(ctx, method)` for the generative ones (imported on first use)."""
        module, attr = ("distill_core.methods.selection", "SELECTION")
        if self.family == "auto":
            module, attr = "distill_core.methods.auto", "AUTO"
        elif self.family == "generative":
            module, attr = "distill_core.methods.generative", self.name.upper()
        elif self.family == "learned":
            module, attr = "distill_core.methods.learned", "LEARNED"
        elif self.family == "instruction":
            module, attr = "distill_core.methods.instruction", "INSTRUCTION"
        return getattr(import_module(module), attr)

    @property
    def generative(self) -> bool:
        return "generate" in self.needs

    @property
    def learned(self) -> bool:
        return "learn" in self.needs

    @property
    def takes_teacher_soft_labels(self) -> bool:
        """Whether `synthesize.soft_labels` can attach the teacher's soft labels to its rows:
        selected real rows only (generated rows have none; learned rows carry their own)."""
        return not (self.generative or self.learned)


METHODS: tuple[Method, ...] = (
    Method("random", "selection", "a stratified random sample", tasks=BOTH),
    Method("kmeans", "selection", "k-means (k = budget) per class, the real row nearest each "
           "centroid (the literature's 'K-Center'; instruction data: on prompt embeddings)",
           options=KmeansOptions, tasks=BOTH),
    Method("herding", "selection", "greedily, rows whose running mean tracks the class mean"),
    Method("kcenter_greedy", "selection", "farthest-first traversal"),
    Method("facility_location", "selection", "greedy facility-location coverage: each pick "
           "adds the most similarity to the class's rows not yet near a pick",
           options=FacilityLocationOptions),
    Method("bilevel", "selection", "herding's picks refined jointly over the classes: swaps "
           "that lower the pool loss of the classifier one step from a zero head on the set "
           "would be (a bilevel coreset), then swaps tried with the linear probe itself "
           "refitted on the set", options=BilevelOptions),
    Method("span_pursuit", "selection", "the rows whose span holds the linear probe fitted on "
           "the pool (orthogonal matching pursuit, jointly over the classes): with learned "
           "soft labels (synthesize.labels.learn) the set's probe becomes that probe",
           options=SpanPursuitOptions),
    Method("auto", "auto", "the recipe (herding, kmeans or bilevel, on the whole "
           "or a teacher-consistent pool, or span_pursuit; each also with learned weights or "
           "soft labels) that cross-validation on the training pool alone scores "
           "best, then run on the whole pool", options=AutoOptions,
           also_options=("kmeans", "facility_location", "bilevel", "span_pursuit")),
    Method("gradmatch", "selection", "orthogonal matching pursuit of the class's mean "
           "classifier-layer gradient", frozenset({"teacher"}), GradmatchOptions),
    Method("el2n", "selection", "one row per EL2N difficulty stratum after dropping the "
           "hardest", frozenset({"teacher"}), El2nOptions),
    Method("llm_synth", "generative", "a decoder LM writes new rows from few-shot prompts of "
           "each class's k-means prototypes, best of n per slot (instruction data: new "
           "instruction-response pairs, the reference decoder's lowest loss per slot)",
           frozenset({"teacher", "generate"}), LlmSynthOptions, tasks=BOTH),
    Method("dilm", "generative", "a decoder fine-tuned class-conditionally samples candidates; "
           "k-means on their embeddings picks the budget",
           frozenset({"teacher", "generate"}), DilmOptions),
    Method("learned_meta", "learned", "synthetic embeddings (soft and attention labels, lr) "
           "optimised so a learner trained k steps on them fits real batches, decoded to text",
           frozenset({"learn"}), LearnedMetaOptions),
    Method("learned_gradient", "learned", "synthetic embeddings whose per-class learner "
           "gradients match those of real rows (DC), decoded to text",
           frozenset({"learn"}), LearnedGradientOptions),
    Method("learned_trajectory", "learned", "synthetic embeddings whose inner steps reach a "
           "later checkpoint of experts fine-tuned on real rows (MTT), decoded to text",
           frozenset({"learn"}), LearnedTrajectoryOptions),
    Method("learned_distribution", "learned", "synthetic embeddings whose per-class mean "
           "feature matches real rows' under perturbed encoders (DM), decoded to text",
           frozenset({"learn"}), LearnedDistributionOptions),
    Method("longest", "instruction", "instruction data: the longest responses first, in "
           "characters (Zhao et al. 2024, 'Long Is More for Alignment'); needs no model",
           tasks=frozenset({"instruction"})),
    Method("ifd", "instruction", "instruction data: highest instruction-following difficulty "
           "(reference decoder's response loss with / without the prompt) below max_score",
           frozenset({"teacher"}), IfdOptions, frozenset({"instruction"})),
    Method("deita", "instruction", "instruction data: IFD order with a cosine cap on prompt "
           "embeddings (DEITA-style quality x diversity)",
           frozenset({"teacher"}), DeitaOptions, frozenset({"instruction"})),
    Method("less", "instruction", "instruction data: cosine of projected LoRA gradients to "
           "the mean gradient of a seeded target set (LESS)",
           frozenset({"teacher"}), LessOptions, frozenset({"instruction"})),
)
_BY_NAME = {m.name: m for m in METHODS}


def method_names(family: Family | None = None, task: Task | None = None) -> list[str]:
    return [m.name for m in METHODS if (family is None or m.family == family)
            and (task is None or task in m.tasks)]


def get_method(name: str) -> Method:
    if name not in _BY_NAME:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(_BY_NAME)}")
    return _BY_NAME[name]
