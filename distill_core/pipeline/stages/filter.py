"""filter: each replicate's candidates through the filters, then the per-class budget, refilled
from the method's ranked reserve; a class left below it is recorded in `shortfall`."""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.filter.stage import filter_candidates
from distill_core.markdown import markdown_table
from distill_core.pipeline.filter_context import filter_context
from distill_core.pipeline.inputs import label_names
from distill_core.pipeline.stage import Stage, StageContext, StageOutput
from distill_core.pipeline.stages.teacher import needs_teacher


def _reads(cfg: RunConfig) -> tuple[str, ...]:
    return ("synthesize", "ingest", "signals") + (("teacher",) if needs_teacher(cfg) else ())


def _settings(cfg: RunConfig) -> dict[str, Any]:
    return {**cfg.filter.model_dump(mode="json"), "per_class": cfg.synthesize.per_class}


def _body(ctx: StageContext) -> StageOutput:
    cfg, store = ctx.cfg, ctx.store
    result = filter_candidates(store.read("synthesize"), cfg.synthesize.per_class, cfg.filter,
                               filter_context(store, needs_teacher(cfg)), label_names(store))
    ctx.report(1, 1, f"{result.kept.num_rows} rows")
    return StageOutput(result.kept, Counts.from_dict(result.counts), rejects=result.rejects,
                       extra={"filters": result.per_filter, "rows_per_class": result.per_class,
                              "shortfall": result.shortfall},
                       seeds=cfg.run.seeds)


SAMPLES_PER_CLASS = 5


def _filters_section(store: RunStore) -> list[str]:
    """Rows in and out of each filter (of clean, then filter) and the contamination check."""
    rows, contaminated, checked = [], {}, False
    for stage in ("clean", "filter"):
        manifest = store.manifest(stage) or {}
        checked |= bool(manifest.get("stage_config", {}).get("contamination", {})
                        .get("enabled"))
        for step in manifest.get("filters", []):
            rows.append([stage, step["filter"], str(step["rows_in"]), str(step["rows_out"]),
                         ", ".join(f"{k}: {v}" for k, v in
                                   step["rejects_by_reason"].items()) or "-"])
            for reason, n in step["rejects_by_reason"].items():
                if reason.startswith("contaminated"):
                    contaminated[stage] = contaminated.get(stage, 0) + n
    lines = (["### Filters", "", markdown_table(
        ["stage", "filter", "rows in", "rows out", "rejected"], rows), ""] if rows else [])
    if checked:
        lines.append("Contamination against the evaluation split: "
                     + (", ".join(f"{n} rows dropped at {s}" for s, n in contaminated.items())
                        or "0 rows dropped") + ".")
    return lines


def _examples_section(store: RunStore) -> list[str]:
    """The first replicate's first rows per class, as distilled: with their training weight
    when the set's weights are not all 1, and their soft label when the set carries them."""
    manifest = store.manifest("filter")
    if manifest is None:
        return []
    distilled = store.read("filter")
    first = distilled.filter(pc.equal(distilled.column("replicate"), 0))
    names = (store.manifest("ingest") or {}).get("label_names", [])
    weighted = bool(first.num_rows) and not pc.all(
        pc.equal(first.column("weight"), 1.0)).as_py()
    soft = bool(first.num_rows) and first.column("soft_label").null_count == 0
    rows = []
    for label in names:
        of_label = first.filter(pc.equal(first.column("label"), label)).slice(
            0, SAMPLES_PER_CLASS)
        for row in of_label.to_pylist():
            text = row["text"] + (f" ||| {row['text_pair']}" if row["text_pair"] else "")
            rows.append([label, row["example_id"], text[:160]]
                        + ([f"{row['weight']:.2f}"] if weighted else [])
                        + ([" · ".join(f"{n} {p:.2f}" for n, p in zip(names, row["soft_label"],
                                                                      strict=False))]
                           if soft else []))
    seed = (manifest.get("seeds") or [0])[0]
    header = (["label", "example_id", "text"] + (["weight"] if weighted else [])
              + (["soft label"] if soft else []))
    return [f"## Distilled examples (seed {seed}, first {SAMPLES_PER_CLASS} per class)", "",
            markdown_table(header, rows)]


def _shortfall_section(store: RunStore) -> list[str]:
    """Classes the filters left below the budget after the reserve ran out, per replicate."""
    manifest = store.manifest("filter") or {}
    short = manifest.get("shortfall") or {}
    if not short:
        return []
    seeds = manifest.get("seeds") or []
    rows = [[rep if not seeds else f"{rep} (seed {seeds[int(rep)]})", label, str(v["kept"]),
             str(v["budget"]), str(v["ranked"])]
            for rep, classes in short.items() for label, v in classes.items()]
    return ["", "Classes below the budget after every ranked candidate was used:", "",
            markdown_table(["replicate", "class", "kept", "budget", "ranked"], rows)]


def _report(store: RunStore) -> list[str]:
    filters = _filters_section(store) + _shortfall_section(store)
    examples = _examples_section(store)
    return filters + ([""] if filters and examples else []) + examples


FILTER = Stage(
    name="filter", version=4,
    writes="the distilled sets, one per replicate, refilled to the budget from the ranked "
           "reserve (+ rejects: duplicates, contamination, teacher_inconsistent, over_budget)",
    reads=_reads, settings=_settings, body=_body, report=_report)
