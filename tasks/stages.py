"""Prefect tasks wrapping the `distill_core.stages` functions.

Each task takes the run config (a small dict) and the run folder path and
returns the path of the artifact it wrote; nothing large crosses a task
boundary. Each publishes a table artifact with its counts, so the Prefect UI
shows the funnel as the run goes. Signals and synthesize retry: model loading
and Ray workers are where transient faults happen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from distill_core import stages
from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.report import build_report, markdown_table, score_rows
from distill_core.signals.embeddings import EncodeFn
from tasks.progress import report


def _store(run_dir: str) -> RunStore:
    return RunStore.open_or_create(run_dir)


def _publish(outcome: stages.StageOutcome, store: RunStore) -> None:
    """A table artifact with the stage's counts (only inside a Prefect task run)."""
    if TaskRunContext.get() is None:
        return
    counts = outcome.counts
    rows: list[dict[str, Any]] = [
        {"metric": "status", "value": outcome.status},
        {"metric": "rows in", "value": counts.get("rows_in")},
        {"metric": "rows out", "value": counts.get("rows_out")},
        {"metric": "rows rejected", "value": counts.get("rows_rejected")},
        {"metric": "wall time (s)", "value": outcome.wall_time_s},
    ]
    rows += [{"metric": f"rejected: {reason}", "value": n}
             for reason, n in (counts.get("rejects_by_reason") or {}).items()]
    manifest = store.manifest(outcome.stage) or {}
    rows += [{"metric": f"filter {step['filter']}: in -> out",
              "value": f"{step['rows_in']} -> {step['rows_out']}"}
             for step in manifest.get("filters", [])]
    if "peak_rss_mb" in manifest:
        rows.append({"metric": "peak RSS (MiB)", "value": manifest["peak_rss_mb"]})
    create_table_artifact(
        key=f"{outcome.stage}-counts", table=rows,
        description=f"{outcome.stage} of run {store.run_id}: {outcome.path}")


def _run(stage: str, outcome: stages.StageOutcome, store: RunStore) -> str:
    report(stage, 1, 1, outcome.status)
    _publish(outcome, store)
    return outcome.path


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(config: dict[str, Any], run_dir: str) -> str:
    cfg, store = RunConfig.model_validate(config), _store(run_dir)
    return _run("ingest", stages.ingest_stage(cfg, store, report), store)


def make_encoder(cfg: RunConfig) -> EncodeFn:
    """The encode function for the configured backend: in process, or a Ray actor pool."""
    if cfg.compute.backend == "ray":
        from tasks.ray_backend import ray_encoder

        return ray_encoder(cfg.signals, cfg.compute, cfg.faults)
    import torch

    from distill_core.signals.encoder import SentenceEncoder

    if cfg.compute.torch_threads:
        torch.set_num_threads(cfg.compute.torch_threads)
    encoder = SentenceEncoder(cfg.signals.model, cfg.signals.max_length, cfg.signals.precision,
                              trust_remote_code=cfg.signals.trust_remote_code)
    return lambda texts: encoder.encode(
        texts, cfg.signals.batch_size, lambda done, total: report("signals", done, total, ""))


@task(name="signals", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def signals_task(config: dict[str, Any], run_dir: str) -> str:
    cfg, store = RunConfig.model_validate(config), _store(run_dir)
    outcome = stages.signals_stage(cfg, store, lambda: make_encoder(cfg), report,
                                   backend=cfg.compute.backend)
    return _run("signals", outcome, store)


@task(name="teacher", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def teacher_task(config: dict[str, Any], run_dir: str) -> str:
    cfg, store = RunConfig.model_validate(config), _store(run_dir)
    return _run("teacher", stages.teacher_stage(cfg, store, report, teacher_predictor(cfg)),
                store)


def teacher_predictor(cfg: RunConfig) -> stages.TeacherPredictFn | None:
    """Read a fine-tuned teacher out on a Ray actor pool when the backend is Ray."""
    if cfg.compute.backend != "ray" or cfg.teacher.kind != "finetune":
        return None
    from tasks.ray_backend import ray_teacher_predict

    def predict(model_dir: str, texts: list[str], pairs: list[str] | None):
        return ray_teacher_predict(model_dir, texts, pairs, cfg.signals, cfg.compute)

    return predict


@task(name="clean", cache_policy=NO_CACHE)
def clean_task(config: dict[str, Any], run_dir: str) -> str | None:
    """Filter the training corpus before selection, when `filter.corpus` is on."""
    cfg, store = RunConfig.model_validate(config), _store(run_dir)
    outcome = stages.clean_stage(cfg, store, report)
    return None if outcome is None else _run("clean", outcome, store)


@task(name="generate", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def generate_task(config: dict[str, Any], run_dir: str) -> str | None:
    """Sample the decoder LM for a generative method (llm_synth, dilm); else nothing."""
    cfg, store = RunConfig.model_validate(config), _store(run_dir)
    outcome = stages.generate_stage(cfg, store, lambda: make_encoder(cfg), make_shard_runner(cfg),
                                    make_generator_trainer(cfg), report, teacher_predictor(cfg))
    return None if outcome is None else _run("generate", outcome, store)


def make_shard_runner(cfg: RunConfig) -> stages.ShardRunFn:
    """Prompt shards generated in process, or on a Ray Data actor pool."""
    g = cfg.generate
    if cfg.compute.backend == "ray":
        from tasks.ray_generate import ray_generate

        def on_ray(shards, model, settings, run_seed, out_dir):
            return ray_generate(shards, model, g, run_seed, settings, out_dir, cfg.compute,
                                cfg.faults)

        return on_ray

    def in_process(shards, model, settings, run_seed, out_dir):
        from distill_core.generate.models import load_causal_lm
        from distill_core.generate.shards import generate_in_process

        if cfg.compute.torch_threads:
            import torch

            torch.set_num_threads(cfg.compute.torch_threads)
        lm = load_causal_lm(model, g.dtype, g.device, g.trust_remote_code)
        table = generate_in_process(shards, lm, run_seed, settings, out_dir,
                                    lambda done, total: report("generate", done, total, ""))
        return table, {"local": len(shards)}

    return in_process


def make_generator_trainer(cfg: RunConfig) -> stages.GeneratorTrainFn:
    """The dilm generator fine-tuned in process, or as a Ray task on a GPU node."""
    g = cfg.generate
    if cfg.compute.backend == "ray":
        from tasks.ray_generate import ray_train_generator

        return lambda model, texts, labels, out_dir, settings: ray_train_generator(
            model, texts, labels, out_dir, settings, g, cfg.compute)
    from distill_core.generate.dilm import train_generator

    return lambda model, texts, labels, out_dir, settings: train_generator(
        model, texts, labels, out_dir, settings, g.dtype, g.device, g.trust_remote_code,
        lambda step, total, loss: report("generate", step, total, f"loss {loss:.3f}"))


@task(name="synthesize", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def synthesize_task(config: dict[str, Any], run_dir: str) -> str:
    cfg, store = RunConfig.model_validate(config), _store(run_dir)
    return _run("synthesize", stages.synthesize_stage(cfg, store, report, make_selector(cfg)),
                store)


def make_selector(cfg: RunConfig):
    """Seeds' selections in process, or as Ray tasks spread over the cluster."""
    if cfg.compute.backend == "ray":
        from tasks.ray_backend import RaySelector

        return RaySelector(cfg.compute)
    from distill_core.synthesize.stage import select_in_process

    return select_in_process


@task(name="filter", cache_policy=NO_CACHE)
def filter_task(config: dict[str, Any], run_dir: str) -> str:
    cfg, store = RunConfig.model_validate(config), _store(run_dir)
    return _run("filter", stages.filter_stage(cfg, store, report), store)


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(config: dict[str, Any], run_dir: str) -> str:
    cfg, store = RunConfig.model_validate(config), _store(run_dir)
    return _run("evaluate", stages.evaluate_stage(cfg, store, report), store)


@task(name="report", cache_policy=NO_CACHE)
def report_task(run_dir: str) -> str:
    """Write report.md and publish the scores as a markdown artifact."""
    text = build_report(run_dir)
    path = Path(run_dir) / "report.md"
    path.write_text(text, encoding="utf-8")
    store = RunStore.open(run_dir)
    evaluate = store.manifest("evaluate")
    if TaskRunContext.get() is not None and evaluate is not None:
        table = markdown_table(["setting", "budget", "n", "accuracy %", "macro-F1 %"],
                               score_rows(evaluate["summary"]))
        create_markdown_artifact(key="scores", markdown=f"{table}\n\nReport: `{path}`",
                                 description=f"scores of run {store.run_id}")
    return str(path)
