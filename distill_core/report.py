"""`report.md` and `report.html`: what a run did, what it produced and how well it scored.

Everything comes from the run folder (manifests, Parquet, DuckDB audit), so
`textdistill report RUN_DIR` rebuilds the same files at any time. Each stage
writes its own section (`Stage.report`); this module puts them in order: the
run's header and sources, the scores, the funnel, the other stages' sections in
pipeline order, the stage table. report.html is the same Markdown rendered
(`report_html`) with two figures after the scores (`report_plots`): accuracy
against random and full data, and a map of the corpus with the distilled rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_core.artifacts.location import Where, location
from distill_core.artifacts.store import RunStore
from distill_core.audit import RunAudit
from distill_core.markdown import markdown_table, score_learners, score_rows
from distill_core.pipeline.order import PIPELINE, stage_named
from distill_core.report_html import figure_html, markdown_to_html, note_html, page
from distill_core.report_plots import (
    accuracy_png,
    corpus_map,
    map_caption,
    map_png,
    outer_loss_png,
)

__all__ = ["build_html", "build_report", "markdown_table", "score_rows", "write_report"]
LEAD = ("ingest", "evaluate")  # the sources and the scores come first


def _run_manifest(store: RunStore) -> dict[str, Any]:
    """A manifest that holds this run's config: the last stage that is never restored from
    the cross-run cache (a cached stage's manifest holds the config of the run that computed
    it: another method, budget or seeds)."""
    for stage in reversed(PIPELINE):
        if not stage.cached and (manifest := store.manifest(stage.name)) is not None:
            return manifest
    return store.manifest("ingest") or {}


def _precision(store: RunStore, config: dict) -> str:
    """The encoder arithmetic that ran (each worker's, as the signals manifest recorded it),
    else the configured setting."""
    configured = str(config.get("signals", {}).get("precision"))
    ran = ((store.manifest("signals") or {}).get("backend_timings") or {}).get("precision")
    if not isinstance(ran, dict) or not ran:
        return configured
    kinds = sorted(set(ran.values()))
    return f"{configured}: ran {', '.join(kinds)}" if configured == "auto" else configured


def _header(store: RunStore) -> list[str]:
    ingest, run = store.manifest("ingest") or {}, _run_manifest(store)
    config = run.get("config", {})
    data, synth = config.get("data", {}), config.get("synthesize", {})
    if data.get("task") == "instruction":
        source = data.get("instruction") or {}
        name = source.get("preset") or (source.get("train") or {}).get("path")
        what = (f"- instruction data: `{name}`; method: `{synth.get('method')}`, "
                f"budget {synth.get('budget') or 0.05} "
                f"({(store.manifest('synthesize') or {}).get('budget_rows')} rows)")
    else:
        what = (f"- dataset: `{data.get('dataset')}`; method: `{synth.get('method')}`, "
                f"{synth.get('per_class')} per class")
    return [
        f"# textdistill run `{store.run_id}`", "",
        f"{what}; seeds: {config.get('run', {}).get('seeds')}",
        f"- encoder: `{config.get('signals', {}).get('model')}` ({_precision(store, config)})",
        f"- config hash: `{run.get('config_hash', '')[:16]}`; labels: "
        f"{', '.join(ingest.get('label_names', []))}", ""]


def _funnel(audit: RunAudit) -> list[str]:
    funnel = [f for f in audit.funnel() if not f.get("handoff")]
    return ["## Funnel", "", markdown_table(
        ["stage", "rows in", "rows out", "rejected", "by reason", "in = out + rejected",
         "wall s", "reused"],
        [[f["stage"], str(f["rows_in"]), str(f["rows_out"]), str(f["rows_rejected"]),
          ", ".join(f"{k}: {v}" for k, v in f["rejects_by_reason"].items()) or "-",
          "yes" if f["balanced"] else "**NO**", str(f["wall_time_s"]),
          "cache" if f["cache_hit"] else "-"] for f in funnel])]


def _stages(store: RunStore) -> list[str]:
    rows = []
    for name in store.stages():
        manifest = store.manifest(name) or {}
        note = manifest.get("recomputed_because") or manifest.get("restored_because")
        rows.append([name, manifest.get("fingerprint", "")[:12],
                     str(manifest.get("wall_time_s")), str(manifest.get("peak_rss_mb")),
                     "hit" if manifest.get("cache", {}).get("hit") else "-",
                     f"redone: {note}" if note else "-"])
    return ["## Stages", "", markdown_table(
        ["stage", "fingerprint", "wall s", "peak RSS MiB", "cache", "note"], rows)]


def _section(store: RunStore, name: str) -> list[str]:
    stage = stage_named(name)
    lines = stage.report(store) if stage.report is not None else []
    return lines + [""] if lines else []


def _markdown_parts(store: RunStore) -> tuple[list[str], list[str]]:
    """The report's Markdown lines in two parts: the header, sources and scores; the rest.
    The HTML page puts the figures between the two."""
    lead = _header(store)
    for name in LEAD:
        lead += _section(store, name)
    rest = _funnel(RunAudit(store.root)) + [""]
    for stage in PIPELINE:
        if stage.name not in LEAD:
            rest += _section(store, stage.name)
    rest += _stages(store)
    rest += ["", "Audit: `textdistill audit " + str(store.root) + "` (funnel), "
             "`--example ID` (lineage of one row), `--json`. Figures (accuracy against random "
             "and full data, a map of the corpus with the distilled rows): `report.html`.", ""]
    return lead, rest


def build_report(run_dir: str | Path) -> str:
    lead, rest = _markdown_parts(RunStore.open(run_dir))
    return "\n".join(lead + rest)


def _figures(store: RunStore) -> str:
    """The report's two figures (or the sentences saying why one is missing), as HTML."""
    evaluate = store.manifest("evaluate")
    parts = ["<h2>Figures</h2>"]
    if evaluate and evaluate.get("instruction_summary"):
        from distill_core.pipeline.stages.instruct_evaluate import loss_png

        parts.append(figure_html(
            loss_png(evaluate["instruction_summary"]), "held-out loss against budget",
            "Held-out response loss per token of `sft_lora` against the rows it trained on, "
            "mean ± sample std over seeds (diamond: the distilled set; circles: random subsets "
            "of the same budget and the full pool)."))
    elif evaluate and evaluate.get("summary"):
        classes = len((store.manifest("ingest") or {}).get("label_names") or []) or None
        several = len(score_learners(evaluate["summary"])) > 1
        parts.append(figure_html(
            accuracy_png(evaluate["summary"], classes), "accuracy per setting",
            "Accuracy on the evaluation split, mean ± sample std over seeds (diamonds: the "
            "distilled sets; circles: random subsets of the same budget and the full training "
            "split, one deterministic fit)"
            + ("; colours: the learners" if several else "")
            + (". The dotted line is chance (one over the classes)." if classes else ".")))
    else:
        parts.append(note_html("No accuracy figure: the evaluate stage has not run."))
    learn = store.manifest("learn")
    if learn and learn.get("replicates"):
        parts.append(figure_html(
            outer_loss_png(learn["replicates"], learn.get("family", "")), "outer loss",
            "The learned distillation's outer (matching) loss at every outer step, per seed "
            "(the learn stage's manifest keeps the values)."))
    corpus = corpus_map(store)
    if isinstance(corpus, str):
        parts.append(note_html(corpus))
        return "\n".join(parts)
    parts.append(figure_html(map_png(corpus), "map of the corpus with the distilled rows",
                             map_caption(corpus)))
    return "\n".join(parts)


def _page(store: RunStore, lead: list[str], rest: list[str]) -> str:
    body = "\n".join([markdown_to_html("\n".join(lead)), _figures(store),
                      markdown_to_html("\n".join(rest))])
    return page(f"textdistill run {store.run_id}", body)


def build_html(run_dir: str | Path) -> str:
    """report.html: the report's Markdown rendered, with the figures after the scores."""
    store = RunStore.open(run_dir)
    return _page(store, *_markdown_parts(store))


def _write_if_changed(path: Where, text: str) -> None:
    """Write only when the content differs (a finished run in a read-only folder is read,
    never written)."""
    try:
        unchanged = path.is_file() and path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        unchanged = False  # unreadable: rewrite it
    if not unchanged:
        path.write_text(text, encoding="utf-8")


def write_report(run_dir: str | Path) -> Where:
    """Write report.md and report.html (self-contained: inline CSS, figures as data URIs),
    each only when its content changed. Returns report.md's path."""
    store = RunStore.open(run_dir)
    lead, rest = _markdown_parts(store)
    path = location(run_dir) / "report.md"
    _write_if_changed(path, "\n".join(lead + rest))
    _write_if_changed(path.with_name("report.html"), _page(store, lead, rest))
    return path
