"""The five stages as plain functions over a run folder: fingerprint, skip or compute, write.

Each function takes the run config and the `RunStore`, reads its inputs from
upstream artifacts and writes its own artifact atomically with a manifest. It
is skipped when the run folder already holds its artifact with the same
fingerprint (resume), and ingest and signals are restored from the cross-run
cache when another run produced them (a changed method reuses embeddings).
Prefect tasks in `tasks/` wrap these; they contain no orchestration.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.manifest import StageClock, build_manifest, fingerprint
from distill_core.artifacts.schemas import rejects_table
from distill_core.artifacts.store import RunStore, sha256_files
from distill_core.config import GENERATIVE_METHODS, RunConfig, stable_hash
from distill_core.evaluate.stage import evaluate_selection, summarize_scores
from distill_core.faults import publish_hook
from distill_core.filter.base import joined_texts
from distill_core.filter.stage import FilterContext, FilterResult, clean_corpus, filter_candidates
from distill_core.generate.candidates import (
    PARSED_SCHEMA,
    answer_lines,
    choose_generated,
    nearest_parents,
    normalised,
)
from distill_core.generate.dilm import GeneratorTraining, TrainedGenerator, training_summary
from distill_core.generate.features import generated_features
from distill_core.generate.models import causal_lm_identity, load_tokenizer
from distill_core.generate.plan import plan_dilm, plan_llm_synth
from distill_core.generate.sampling import SamplingSettings
from distill_core.generate.shards import PromptShard, derive_seed, make_shards
from distill_core.ingest.ingest import (
    data_dir_from,
    ingest_dataset,
    resolve_dataset,
    resolve_sources,
)
from distill_core.models.finetune import FinetuneSettings, finetune_classifier, load_finetuned
from distill_core.signals.embeddings import (
    EncodeFn,
    embed_corpus,
    features,
    matrix,
    pair_texts,
    require_aligned,
    split_features,
    texts_hash,
)
from distill_core.signals.models import model_identity
from distill_core.signals.teacher import (
    class_logits,
    fit_teacher,
    signals_from_logits,
    softmax,
    teacher_signals,
    teacher_table,
)
from distill_core.synthesize.stage import (
    SeedSelector,
    TeacherView,
    needs_teacher,
    select_candidates,
    select_in_process,
)

ProgressFn = Callable[[str, float, float | None, str], None]  # stage, done, total, note
CACHEABLE = ("ingest", "signals", "teacher")


@dataclass
class StageOutcome:
    """What happened to a stage: computed, resumed (already in the run) or restored from cache."""

    stage: str
    path: str
    fingerprint: str
    status: str  # "computed" | "resumed" | "cached"
    counts: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0


def _noop(stage: str, done: float, total: float | None, note: str) -> None:
    return None


def _existing(cfg: RunConfig, store: RunStore, stage: str, fp: str) -> StageOutcome | None:
    """The stage's outcome when it is already done (resume) or cached; None to compute it.

    Every stage starts here, so this is also where injected faults are armed.
    """
    store.before_publish = publish_hook(cfg.faults)
    status = None
    if store.is_complete(stage, fp):
        status = "resumed"
    elif stage in CACHEABLE and store.restore_from_cache(stage, fp):
        status = "cached"
    if status is None:
        return None
    manifest = store.manifest(stage) or {}
    return StageOutcome(stage, str(store.stage_dir(stage)), fp, status,
                        manifest.get("counts", {}), 0.0)


def _finish(store: RunStore, stage: str, fp: str, manifest: dict[str, Any]) -> StageOutcome:
    if stage in CACHEABLE:
        store.save_to_cache(stage)
    return StageOutcome(stage, str(store.stage_dir(stage)), fp, "computed", manifest["counts"],
                        manifest["wall_time_s"])


def _common(cfg: RunConfig) -> dict[str, Any]:
    return {"run_config": cfg.model_dump(mode="json"), "config_hash": cfg.config_hash()}


def _artifact_input(store: RunStore, stage: str) -> dict[str, Any]:
    manifest = store.manifest(stage) or {}
    return {"fingerprint": manifest.get("fingerprint"),
            "sha256": sha256_files(store.parts(stage)),
            "rows": manifest.get("counts", {}).get("rows_out")}


# -- ingest ------------------------------------------------------------------------------------

def ingest_fingerprint(cfg: RunConfig) -> str:
    spec = resolve_dataset(cfg.data.dataset, cfg.data.train, cfg.data.eval, cfg.data.label_names)
    sources = [s.identity() | {"split": s.split, "columns": s.columns.model_dump()}
               for s in resolve_sources(spec, data_dir_from(cfg.data.data_dir))]
    return fingerprint("ingest", {"label_names": spec.label_names}, {"sources": str(sources)})


def ingest_stage(cfg: RunConfig, store: RunStore, progress: ProgressFn = _noop) -> StageOutcome:
    fp = ingest_fingerprint(cfg)
    if (done := _existing(cfg, store, "ingest", fp)) is not None:
        return done
    clock = StageClock()
    progress("ingest", 0, None, "reading")
    spec = resolve_dataset(cfg.data.dataset, cfg.data.train, cfg.data.eval, cfg.data.label_names)
    result = ingest_dataset(spec, data_dir_from(cfg.data.data_dir))
    split_rows = {s: int(pc.sum(pc.equal(result.corpus.column("split"), s)).as_py() or 0)
                  for s in ("train", "eval")}
    counts = {"rows_in": result.rows_in, "rows_out": result.corpus.num_rows,
              "rows_rejected": result.rejects.num_rows,
              "rejects_by_reason": dict(Counter(result.rejects.column("reason").to_pylist())),
              "rows_by_split": split_rows}
    manifest = build_manifest(stage="ingest", fingerprint_=fp, stage_config=cfg.data.model_dump(
        mode="json"), inputs={"sources": result.sources}, counts=counts, clock=clock,
        extra={"label_names": result.label_names}, **_common(cfg))
    store.write_stage("ingest", result.corpus, manifest, rejects=result.rejects)
    progress("ingest", 1, 1, f"{result.corpus.num_rows} rows")
    return _finish(store, "ingest", fp, manifest)


def label_names(store: RunStore) -> list[str]:
    manifest = store.manifest("ingest")
    if manifest is None:
        raise RuntimeError("ingest has not run")
    return list(manifest["label_names"])


# -- signals -----------------------------------------------------------------------------------

def signals_fingerprint(cfg: RunConfig, store: RunStore) -> tuple[str, dict[str, Any]]:
    corpus = store.read("ingest", columns=["text", "text_pair"])
    stage_config = {"model": model_identity(cfg.signals.model),
                    "max_length": cfg.signals.max_length, "precision": cfg.signals.precision,
                    "pooling": "mean", "normalize": "l2"}
    return fingerprint("signals", stage_config, {"texts": texts_hash(corpus)}), stage_config


def signals_stage(cfg: RunConfig, store: RunStore, make_encoder: Callable[[], EncodeFn],
                  progress: ProgressFn = _noop, backend: str = "local") -> StageOutcome:
    """Embed every corpus text with the encoder that `make_encoder` builds (local or Ray)."""
    fp, stage_config = signals_fingerprint(cfg, store)
    if (done := _existing(cfg, store, "signals", fp)) is not None:
        return done
    clock = StageClock()
    corpus = store.read("ingest")
    encode = make_encoder()
    embeddings = embed_corpus(corpus, encode)
    counts = {"rows_in": corpus.num_rows, "rows_out": embeddings.num_rows, "rows_rejected": 0,
              "rejects_by_reason": {}}
    wall = clock.seconds()
    manifest = build_manifest(
        stage="signals", fingerprint_=fp, stage_config=stage_config,
        inputs={"ingest": _artifact_input(store, "ingest")}, counts=counts, clock=clock,
        extra={"backend": backend, "workers": getattr(encode, "workers", None),
               "backend_timings": getattr(encode, "timings", None),
               "texts_per_second": round(corpus.num_rows / max(wall, 1e-9), 1)},
        **_common(cfg))
    store.write_stage("signals", embeddings, manifest)
    return _finish(store, "signals", fp, manifest)


def _upstream(store: RunStore, *stages: str) -> dict[str, str]:
    return {s: (store.manifest(s) or {}).get("fingerprint", "") for s in stages}


# -- teacher (the second half of the signals stage) --------------------------------------------

TeacherPredictFn = Callable[[str, list[str], list[str] | None], tuple[np.ndarray, np.ndarray]]


def teacher_stage(cfg: RunConfig, store: RunStore, progress: ProgressFn = _noop,
                  predict: TeacherPredictFn | None = None) -> StageOutcome:
    """Fit the teacher on the training split; per-row logits, losses, gradients.

    The teacher is the linear probe on the frozen embeddings, or (`teacher.kind: finetune`)
    the encoder fine-tuned with a fresh head, whose pooled outputs are kept as `features`.
    A fine-tuned teacher is saved in the run folder (`teacher_model/`, safetensors) and read
    out by `predict(folder, texts, pairs)` (a Ray actor pool), or in process by default.
    """
    teacher_cfg = cfg.teacher.model_dump(mode="json", exclude={"temperature"})
    if cfg.teacher.kind == "finetune":
        teacher_cfg["model"] = model_identity(cfg.teacher.model or cfg.signals.model)
        teacher_cfg["max_length"] = cfg.signals.max_length
    stage_config = teacher_cfg
    fp = fingerprint("teacher", stage_config, _upstream(store, "ingest", "signals"))
    if (done := _existing(cfg, store, "teacher", fp)) is not None:
        return done
    clock = StageClock()
    corpus, embeddings = store.read("ingest"), store.read("signals")
    require_aligned(corpus, embeddings)
    labels = corpus.column("label_id").to_numpy()
    is_train = np.asarray(corpus.column("split").to_pylist()) == "train"
    n_classes = len(label_names(store))
    head_inputs = None
    if cfg.teacher.kind == "finetune":
        texts = corpus.column("text").to_pylist()
        pairs = pair_texts(corpus)
        train_rows = np.flatnonzero(is_train)
        t = cfg.teacher
        tuned = finetune_classifier(
            t.model or cfg.signals.model, [texts[i] for i in train_rows],
            None if pairs is None else [pairs[i] for i in train_rows], labels[train_rows],
            n_classes, FinetuneSettings(steps=t.steps, batch_size=t.batch_size, lr=t.lr,
                                        warmup_ratio=t.warmup_ratio,
                                        weight_decay=t.weight_decay,
                                        max_length=cfg.signals.max_length, seed=t.seed),
            trust_remote_code=cfg.signals.trust_remote_code,
            progress=lambda done, total: progress("teacher", done, total, "fine-tuning"))
        model_dir = tuned.save(store.root / "teacher_model" / fp[:16])
        if predict is None:
            logits, head_inputs = tuned.predict(texts, pairs, cfg.signals.batch_size)
        else:
            logits, head_inputs = predict(str(model_dir), texts, pairs)
        signals = signals_from_logits(logits, labels)
    else:
        x = features(embeddings)
        model = fit_teacher(x[is_train], labels[is_train], cfg.teacher.C, cfg.teacher.max_iter)
        signals = teacher_signals(model, x, labels, n_classes)
    predicted = signals.logits.argmax(axis=1)
    accuracy = {split: float((predicted[mask] == labels[mask]).mean()) if mask.any() else None
                for split, mask in (("train", is_train), ("eval", ~is_train))}
    table = teacher_table(corpus.column("example_id"), corpus.column("split"), signals,
                          head_inputs)
    counts = {"rows_in": corpus.num_rows, "rows_out": table.num_rows, "rows_rejected": 0,
              "rejects_by_reason": {}}
    manifest = build_manifest(
        stage="teacher", fingerprint_=fp, stage_config=stage_config,
        inputs={s: _artifact_input(store, s) for s in ("ingest", "signals")}, counts=counts,
        clock=clock, extra={"accuracy": accuracy}, **_common(cfg))
    store.write_stage("teacher", table, manifest)
    progress("teacher", 1, 1, f"eval accuracy {accuracy['eval'] or 0:.3f}")
    return _finish(store, "teacher", fp, manifest)


def teacher_view(store: RunStore, train_ids: list[str], temperature: float) -> TeacherView:
    """Teacher signals of the training rows, in `train_ids` order."""
    table = store.read("teacher")
    table = table.filter(pc.equal(table.column("split"), "train"))
    position = {e: i for i, e in enumerate(table.column("example_id").to_pylist())}
    missing = [e for e in train_ids[:5] if e not in position]
    if missing:
        raise RuntimeError(f"no teacher signals for training rows {missing}")
    rows = np.fromiter((position[e] for e in train_ids), dtype=np.int64, count=len(train_ids))
    return TeacherView(grad_logits=matrix(table, "grad_logits")[rows],
                       el2n=table.column("el2n").to_numpy()[rows],
                       soft_labels=softmax(matrix(table, "logits")[rows].astype(np.float64),
                                           temperature).astype(np.float32),
                       features=(matrix(table, "features")[rows]
                                 if "features" in table.column_names else None))


def filter_context(store: RunStore) -> FilterContext:
    """Normalised features, teacher p(own label) and the eval split, for the filters."""
    corpus, embeddings = store.read("ingest"), store.read("signals")
    require_aligned(corpus, embeddings)
    x = features(embeddings)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    label_prob = None
    if store.manifest("teacher") is not None:
        soft = matrix(store.read("teacher", columns=["soft_label"]), "soft_label")
        label_prob = soft[np.arange(len(soft)), corpus.column("label_id").to_numpy()]
    is_eval = np.asarray(corpus.column("split").to_pylist()) == "eval"
    eval_texts = joined_texts(corpus.filter(pa.array(is_eval)))
    eval_x = x[is_eval]
    ids = {e: i for i, e in enumerate(corpus.column("example_id").to_pylist()) if not is_eval[i]}
    generated = generated_features(store)
    if generated is not None:  # generated rows: features from the generate stage
        x = generated.extend(ids, x)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        if label_prob is not None:
            label_prob = np.concatenate([label_prob, generated.label_prob])
    return FilterContext(ids=ids, vectors=x, label_prob=label_prob, eval_texts=eval_texts,
                         eval_vectors=eval_x)


def _publish_filter_result(cfg: RunConfig, store: RunStore, stage: str, fp: str,
                           result: FilterResult, clock: StageClock, inputs: tuple[str, ...],
                           stage_config: dict[str, Any], extra: dict[str, Any]) -> StageOutcome:
    manifest = build_manifest(
        stage=stage, fingerprint_=fp, stage_config=stage_config,
        inputs={s: _artifact_input(store, s) for s in inputs}, counts=result.counts,
        clock=clock, seeds=cfg.run.seeds, extra={"filters": result.per_filter, **extra},
        **_common(cfg))
    store.write_stage(stage, result.kept, manifest, rejects=result.rejects)
    return _finish(store, stage, fp, manifest)


def clean_stage(cfg: RunConfig, store: RunStore, progress: ProgressFn = _noop
                ) -> StageOutcome | None:
    """The configured filters on the training corpus, before selection (`filter.corpus`)."""
    if not cfg.filter.corpus:
        return None
    stage_config = cfg.filter.model_dump(mode="json")
    fp = fingerprint("clean", stage_config, _upstream(store, "ingest", "signals", "teacher"))
    if (done := _existing(cfg, store, "clean", fp)) is not None:
        return done
    clock = StageClock()
    corpus = store.read("ingest")
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    result = clean_corpus(train, cfg.filter, filter_context(store))
    outcome = _publish_filter_result(cfg, store, "clean", fp, result, clock,
                                     ("ingest", "signals", "teacher"), stage_config, {})
    progress("clean", 1, 1, f"{result.kept.num_rows} rows")
    return outcome


# -- generate (the generative methods only) ----------------------------------------------------

# (shards, model folder or name, sampling, run seed, parts folder) -> (answers, rows per worker)
ShardRunFn = Callable[[list[PromptShard], str, SamplingSettings, int, str],
                      tuple[pa.Table, dict[str, int]]]
# (model, texts, label names, output folder, settings) -> the trained generator
GeneratorTrainFn = Callable[[str, list[str], list[str], str, GeneratorTraining],
                            TrainedGenerator]


def selection_pool(cfg: RunConfig, store: RunStore) -> tuple[pa.Table, np.ndarray]:
    """The training rows a method draws on (after the corpus filters, when on), with features."""
    train, train_x = split_features(store.read("ingest"), store.read("signals"), "train")
    if cfg.filter.corpus:
        kept = set(store.read("clean", columns=["example_id"]).column("example_id").to_pylist())
        mask = np.fromiter((e in kept for e in train.column("example_id").to_pylist()),
                           dtype=bool, count=train.num_rows)
        train, train_x = train.filter(pa.array(mask)), train_x[mask]
    return train, train_x


def teacher_probabilities(cfg: RunConfig, store: RunStore, texts: list[str],
                          vectors: np.ndarray, predict: TeacherPredictFn | None = None
                          ) -> np.ndarray:
    """The run's teacher read on new texts: the probe refitted on the training embeddings
    (deterministic), or the fine-tuned teacher loaded from the run folder."""
    n_classes = len(label_names(store))
    if cfg.teacher.kind == "finetune":
        fp = (store.manifest("teacher") or {})["fingerprint"]
        folder = store.root / "teacher_model" / fp[:16]
        if predict is not None:
            logits, _ = predict(str(folder), texts, None)
        else:
            logits, _ = load_finetuned(folder).predict(texts, None, cfg.signals.batch_size)
        return softmax(np.asarray(logits, np.float64))
    train, train_x = split_features(store.read("ingest"), store.read("signals"), "train")
    model = fit_teacher(train_x, train.column("label_id").to_numpy(), cfg.teacher.C,
                        cfg.teacher.max_iter)
    return softmax(class_logits(model, vectors, n_classes).astype(np.float64))


def _generate_upstream(cfg: RunConfig) -> tuple[str, ...]:
    return ("ingest", "signals", "teacher") + (("clean",) if cfg.filter.corpus else ())


def generate_stage(cfg: RunConfig, store: RunStore, make_encoder: Callable[[], EncodeFn],
                   run_shards: ShardRunFn, train_generator: GeneratorTrainFn,
                   progress: ProgressFn = _noop, predict: TeacherPredictFn | None = None
                   ) -> StageOutcome | None:
    """Sample the decoder for a generative method; one row per usable generated line.

    Rows carry the line's embedding and the teacher's probabilities (for the choice, the
    filters and the learners); unusable lines are rejects with their reason. `dilm` first
    fine-tunes the generator (`train_generator`, in process or on a GPU worker).
    """
    method, g = cfg.synthesize.method, cfg.generate
    if method not in GENERATIVE_METHODS:
        return None
    identity = causal_lm_identity(g.model)
    stage_config = {"method": method, "per_class": cfg.synthesize.per_class,
                    "seeds": cfg.run.seeds, **g.model_dump(mode="json"),
                    "model_identity": identity}
    upstream = _generate_upstream(cfg)
    fp = fingerprint("generate", stage_config, _upstream(store, *upstream))
    if (done := _existing(cfg, store, "generate", fp)) is not None:
        return done
    clock = StageClock()
    train, train_x = selection_pool(cfg, store)
    names = label_names(store)
    extra: dict[str, Any] = {"model": g.model, "backend": cfg.compute.backend}
    if method == "dilm":
        # In the runs folder's cache, keyed by what the generator learns from: another run that
        # changes only the parse or the choice reuses it.
        training = GeneratorTraining(
            steps=g.train_steps, batch_size=g.train_batch_size, lr=g.train_lr,
            max_length=g.train_max_length, lora_r=g.lora_r, lora_alpha=g.lora_alpha,
            seed=cfg.run.seeds[0])
        key = stable_hash({"model": identity, "dtype": g.dtype, "training": asdict(training),
                           "data": _upstream(store, *upstream[:2], *upstream[3:])})
        folder = store.cache_root / "generator" / key[:16]
        if not (folder / "config.json").is_file():
            progress("generate", 0, g.train_steps, "fine-tuning the generator")
            train_generator(g.model, train.column("text").to_pylist(),
                            [names[i] for i in train.column("label_id").to_pylist()],
                            str(folder), training)
        extra["generator"] = training_summary(folder)
        model_path, model_key = str(folder), key
        labels = sorted(set(train.column("label_id").to_pylist()))
        plan = plan_dilm(labels, names, cfg.run.seeds, g)
    else:
        model_path, model_key = g.model, identity
        plan = plan_llm_synth(train, train_x, names, cfg.synthesize.per_class, cfg.run.seeds, g,
                              load_tokenizer(g.model, g.trust_remote_code))
    shards = make_shards(plan.prompt_ids, plan.prompts, plan.samples, g.shard_size)
    progress("generate", 0, len(shards), f"{len(plan.prompts)} prompts")
    settings = SamplingSettings(max_new_tokens=g.max_new_tokens, temperature=g.temperature,
                                top_p=g.top_p, batch_size=g.batch_size)
    run_seed = derive_seed(*cfg.run.seeds)
    # Parts are cached by what the model is asked and how it samples: a changed parse or
    # choice reuses them, and a rerun after a crash generates only the missing shards.
    parts_key = stable_hash({"model": model_key, "dtype": g.dtype, "settings": asdict(settings),
                             "run_seed": run_seed, "shards": [asdict(s) for s in shards]})
    sampled_at = StageClock()
    answers, workers = run_shards(shards, model_path, settings, run_seed,
                                  str(store.cache_root / "generate_parts" / parts_key[:16]))
    sampling_s = sampled_at.seconds()
    rows, rejects = answer_lines(answers, plan, method, names, g)
    parsed = pa.Table.from_pylist(rows, schema=PARSED_SCHEMA)
    texts = parsed.column("text").to_pylist()
    vectors = (np.asarray(make_encoder()(texts), np.float32) if texts
               else np.zeros((0, train_x.shape[1]), np.float32))
    probs = (teacher_probabilities(cfg, store, texts, vectors, predict) if texts
             else np.zeros((0, len(names))))
    if method == "dilm" and texts:
        parents = nearest_parents(normalised(vectors), parsed.column("label_id").to_numpy(),
                                  normalised(train_x), train.column("label_id").to_numpy(),
                                  train.column("example_id").to_pylist())
        parsed = parsed.set_column(parsed.schema.get_field_index("parent_ids"), "parent_ids",
                                   pa.array(parents, pa.list_(pa.string())))
    table = parsed.append_column("embedding", pa.array(list(vectors), pa.list_(pa.float32())))
    table = table.append_column("teacher_prob", pa.array(list(probs.astype(np.float32)),
                                                         pa.list_(pa.float32())))
    tokens = int(sum(answers.column("new_tokens").to_pylist()))
    counts = {"rows_in": len(rows) + len(rejects), "rows_out": table.num_rows,
              "rows_rejected": len(rejects),
              "rejects_by_reason": dict(Counter(r["reason"] for r in rejects)),
              "answers": answers.num_rows, "prompts": len(plan.prompts), "shards": len(shards),
              "new_tokens": tokens}
    extra.update({"workers": workers, "sampling_s": round(sampling_s, 2),
                  "tokens_per_second": round(tokens / max(sampling_s, 1e-9), 2),
                  "run_seed": run_seed,
                  "parts": str(store.cache_root / "generate_parts" / parts_key[:16])})
    manifest = build_manifest(
        stage="generate", fingerprint_=fp, stage_config=stage_config,
        inputs={s: _artifact_input(store, s) for s in upstream}, counts=counts, clock=clock,
        seeds=cfg.run.seeds, extra=extra, **_common(cfg))
    store.write_stage("generate", table, manifest, rejects=rejects_table(rejects))
    progress("generate", len(shards), len(shards), f"{table.num_rows} usable lines")
    return _finish(store, "generate", fp, manifest)


def _class_gradients(store: RunStore, train: pa.Table, train_x: np.ndarray
                     ) -> dict[int, np.ndarray]:
    """Each class's mean classifier-layer gradient under the teacher: mean (p - y) x^T."""
    view = teacher_view(store, train.column("example_id").to_pylist(), 1.0)
    x = normalised(train_x)
    labels = train.column("label_id").to_numpy()
    return {int(c): view.grad_logits[labels == c].T @ x[labels == c] / max((labels == c).sum(), 1)
            for c in np.unique(labels)}


# -- synthesize --------------------------------------------------------------------------------


def synthesize_stage(cfg: RunConfig, store: RunStore, progress: ProgressFn = _noop,
                     selector: SeedSelector = select_in_process) -> StageOutcome:
    """One distilled set per seed; `selector` runs the seeds in process or on Ray workers.

    A generative method chooses among the `generate` stage's rows instead of the training rows.
    """
    method = cfg.synthesize.method
    generative = method in GENERATIVE_METHODS
    method_cfg = cfg.synthesize.model_dump(mode="json")
    use_teacher = generative or needs_teacher(method) or cfg.synthesize.soft_labels
    stage_config = {**method_cfg, "seeds": cfg.run.seeds, "run_id": store.run_id,
                    "temperature": cfg.teacher.temperature if use_teacher else None}
    upstream = ("ingest", "signals", "teacher") if use_teacher else ("ingest", "signals")
    if cfg.filter.corpus:
        upstream += ("clean",)
    if generative:
        upstream += ("generate",)
    fp = fingerprint("synthesize", stage_config, _upstream(store, *upstream))
    if (done := _existing(cfg, store, "synthesize", fp)) is not None:
        return done
    clock = StageClock()
    progress("synthesize", 0, len(cfg.run.seeds), method)
    train, train_x = selection_pool(cfg, store)
    if generative:
        g = cfg.generate
        gradients = (_class_gradients(store, train, train_x)
                     if method == "dilm" and g.grad_rank else None)
        result = choose_generated(store.read("generate"), method, cfg.synthesize.per_class,
                                  cfg.run.seeds, store.run_id, g, gradients,
                                  sorted(set(train.column("label_id").to_pylist())))
        pool = "generate"
    else:
        teacher = (teacher_view(store, train.column("example_id").to_pylist(),
                                cfg.teacher.temperature) if use_teacher else None)
        result = select_candidates(train, train_x, method, cfg.synthesize.per_class,
                                   cfg.run.seeds, store.run_id, cfg.synthesize.method_params(),
                                   teacher=teacher, soft_labels=cfg.synthesize.soft_labels,
                                   selector=selector)
        pool = "clean" if cfg.filter.corpus else "train"
    manifest = build_manifest(
        stage="synthesize", fingerprint_=fp, stage_config=stage_config,
        inputs={s: _artifact_input(store, s) for s in upstream},
        counts=result.counts, clock=clock, seeds=cfg.run.seeds,
        extra={"class_shortfall": {str(k): v for k, v in result.shortfall.items()},
               "label_names": label_names(store), "backend": cfg.compute.backend,
               "pool": pool, "workers": getattr(selector, "workers", None)}, **_common(cfg))
    store.write_stage("synthesize", result.candidates, manifest, rejects=result.rejects)
    progress("synthesize", len(cfg.run.seeds), len(cfg.run.seeds), "done")
    return _finish(store, "synthesize", fp, manifest)


# -- filter ------------------------------------------------------------------------------------

def filter_stage(cfg: RunConfig, store: RunStore, progress: ProgressFn = _noop) -> StageOutcome:
    stage_config = {**cfg.filter.model_dump(mode="json"), "per_class": cfg.synthesize.per_class}
    inputs = ("synthesize", "ingest", "signals") + (
        ("teacher",) if store.manifest("teacher") is not None else ())
    fp = fingerprint("filter", stage_config, _upstream(store, *inputs))
    if (done := _existing(cfg, store, "filter", fp)) is not None:
        return done
    clock = StageClock()
    result = filter_candidates(store.read("synthesize"), cfg.synthesize.per_class, cfg.filter,
                               filter_context(store))
    outcome = _publish_filter_result(cfg, store, "filter", fp, result, clock, inputs,
                                     stage_config, {"rows_per_class": result.per_class})
    progress("filter", 1, 1, f"{result.kept.num_rows} rows")
    return outcome


# -- evaluate ----------------------------------------------------------------------------------

def evaluate_stage(cfg: RunConfig, store: RunStore, progress: ProgressFn = _noop
                   ) -> StageOutcome:
    stage_config = {**cfg.evaluate.model_dump(mode="json"), "seeds": cfg.run.seeds,
                    "per_class": cfg.synthesize.per_class, "method": cfg.synthesize.method,
                    "temperature": cfg.teacher.temperature}
    fp = fingerprint("evaluate", stage_config, _upstream(store, "ingest", "signals", "filter"))
    if (done := _existing(cfg, store, "evaluate", fp)) is not None:
        return done
    clock = StageClock()
    corpus, embeddings = store.read("ingest"), store.read("signals")
    train, train_x = split_features(corpus, embeddings, "train")
    evaluation, eval_x = split_features(corpus, embeddings, "eval")
    if evaluation.num_rows == 0:
        raise RuntimeError("the evaluation split has no usable rows (see ingest rejects)")
    total = len(cfg.run.seeds) * (1 + cfg.synthesize.soft_labels
                                  + ("random" in cfg.evaluate.baselines)) + (
        "full" in cfg.evaluate.baselines)
    fits = {"n": 0}

    def tick(note: str) -> None:
        fits["n"] += 1
        progress("evaluate", fits["n"], total, note)

    scores = evaluate_selection(
        train, train_x, evaluation.column("label_id").to_numpy(), eval_x, store.read("filter"),
        cfg.synthesize.method, cfg.synthesize.per_class, cfg.run.seeds, len(label_names(store)),
        cfg.evaluate.baselines, cfg.evaluate.C, cfg.evaluate.max_iter, tick,
        temperature=cfg.teacher.temperature, generated=generated_features(store))
    counts = {"rows_in": scores.num_rows, "rows_out": scores.num_rows, "rows_rejected": 0,
              "rejects_by_reason": {}, "eval_rows": evaluation.num_rows}
    manifest = build_manifest(
        stage="evaluate", fingerprint_=fp, stage_config=stage_config,
        inputs={s: _artifact_input(store, s) for s in ("ingest", "signals", "filter")},
        counts=counts, clock=clock, seeds=cfg.run.seeds,
        extra={"summary": summarize_scores(scores)}, **_common(cfg))
    store.write_stage("evaluate", scores, manifest)
    return _finish(store, "evaluate", fp, manifest)
