"""The one stage runner: fingerprint, skip or restore, clock, manifest, publish, cache.

Every stage goes through `run_stage`, so resume (a matching fingerprint in the
run folder), the cross-run cache (stages declared `cached`), timing, peak
memory, the manifest and the atomic publish behave the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from distill_core.artifacts.cache_use import cache_in_use
from distill_core.artifacts.manifest import Manifest, StageClock, fingerprint
from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.hashing import stable_hash
from distill_core.heap import return_freed_memory
from distill_core.pipeline.stage import Stage, StageContext


@dataclass
class StageOutcome:
    """What happened to a stage: computed, resumed (already in the run) or restored from cache."""

    stage: str
    path: str
    fingerprint: str
    status: str  # "computed" | "resumed" | "cached"
    counts: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0


def upstream_fingerprints(store: RunStore, stages: tuple[str, ...]) -> dict[str, str]:
    return {s: (store.manifest(s) or {}).get("fingerprint", "") for s in stages}


def stage_fingerprint(stage: Stage, cfg: RunConfig, store: RunStore) -> tuple[str, Any]:
    """(fingerprint, settings): what the stage's output depends on, hashed."""
    settings = stage.settings(cfg)
    upstream = (stage.identity(cfg, store) if stage.identity is not None
                else upstream_fingerprints(store, stage.reads(cfg)))
    return fingerprint(stage.name, stage.version, settings, upstream), settings


def artifact_input(store: RunStore, stage: str) -> dict[str, Any]:
    """An upstream artifact as a manifest records it: fingerprint, content hash (of its parts'
    recorded sha256s, which the body's reads verified: no second pass over the bytes), rows."""
    manifest = store.manifest(stage) or {}
    return {"fingerprint": manifest.get("fingerprint"),
            "sha256": stable_hash(manifest.get("parts")),
            "rows": manifest.get("counts", {}).get("rows_out")}


InputsCheck = Callable[[dict[str, Any]], str | None]


def inputs_problem(store: RunStore, reads: tuple[str, ...]) -> InputsCheck:
    """A check of a found manifest (this run's or the cache's): it must record, for every
    upstream stage it reads, the content hash that stage's manifest now gives. An equal
    fingerprint says the upstream was made the same way; this says it holds the same bytes
    (a recomputed upstream need not: sampling, threads, a replaced part)."""
    now = {s: artifact_input(store, s)["sha256"] for s in reads}

    def problem(manifest: dict[str, Any]) -> str | None:
        recorded = manifest.get("inputs") if isinstance(manifest.get("inputs"), dict) else {}
        for upstream, sha256 in now.items():
            entry = recorded.get(upstream)
            was = entry.get("sha256") if isinstance(entry, dict) else None
            if was != sha256:
                return (f"made from other {upstream} rows than this run's (recorded content "
                        f"{str(was)[:12]}, now {sha256[:12]})")
        return None

    return problem


def existing_outcome(stage: Stage, cfg: RunConfig, store: RunStore,
                     fp: str) -> StageOutcome | None:
    """The stage's outcome when the run already has it (resume) or the cache does, made
    from the very upstream artifacts this run holds."""
    status = None
    check = inputs_problem(store, stage.reads(cfg))
    if store.is_complete(stage.name, fp, check):
        status = "resumed"
    elif stage.cached and store.restore_from_cache(stage.name, fp, check):
        status = "cached"
    if status is None:
        return None
    manifest = store.manifest(stage.name) or {}
    return StageOutcome(stage.name, str(store.stage_dir(stage.name)), fp, status,
                        manifest.get("counts", {}), 0.0)


def run_stage(stage: Stage, ctx: StageContext) -> StageOutcome:
    """Skip, restore or compute `stage` in the context's run folder, holding the runs
    folder's cache in use (`cache prune` waits for no stage, and removes nothing under one)."""
    with cache_in_use(ctx.store.cache_root):
        return _run_stage(stage, ctx)


def _run_stage(stage: Stage, ctx: StageContext) -> StageOutcome:
    cfg, store = ctx.cfg, ctx.store
    fp, settings = stage_fingerprint(stage, cfg, store)
    if (done := existing_outcome(stage, cfg, store, fp)) is not None:
        return done
    clock = StageClock()
    store.before_publish = ctx.executor.before_publish
    writer = store.stage_writer(stage.name)
    try:
        output = stage.body(replace(ctx, stage=stage.name, resources=stage.resources(cfg.compute),
                                    fingerprint=fp, writer=writer))
        inputs = {**output.inputs, **{s: artifact_input(store, s) for s in stage.reads(cfg)}}
        extra = dict(output.extra)
        if stage.name in store.invalid:  # found with this fingerprint but changed since: redone
            extra["recomputed_because"] = store.invalid[stage.name]
        manifest = Manifest(
            stage=stage.name, fingerprint=fp, config_hash=cfg.config_hash(),
            stage_config=settings, config=cfg.model_dump(mode="json"), inputs=inputs,
            counts=output.counts, clock=clock, seeds=output.seeds, extra=extra).to_dict()
        if output.table is not None:
            writer.write(output.table)
        if output.rejects is not None:
            writer.write(output.rejects, rejects=True)
        writer.publish(manifest)
    finally:
        writer.abort()
    if stage.cached and stage.copy_to_cache(cfg, store):
        store.save_to_cache(stage.name)
    # The stage's arrays are gone; the holes they left in glibc's heap are not. Give them
    # back, so the next stage (and the report) start from the process's level, not above it.
    return_freed_memory()
    return StageOutcome(stage.name, str(store.stage_dir(stage.name)), fp,
                        "cached" if output.from_cache else "computed",
                        manifest["counts"], manifest["wall_time_s"])
