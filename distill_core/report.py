"""`report.md`: what a run did, what it produced and how well it scored, from its artifacts.

Everything comes from the run folder (manifests, Parquet, DuckDB audit), so
`textdistill report RUN_DIR` rebuilds the same file at any time. Each stage
writes its own section (`Stage.report`); this module puts them in order: the
run's header and sources, the scores, the funnel, the other stages' sections in
pipeline order, the stage table.
"""

from __future__ import annotations

from pathlib import Path

from distill_core.artifacts.store import RunStore
from distill_core.audit import RunAudit
from distill_core.markdown import markdown_table, score_rows
from distill_core.pipeline.order import PIPELINE, stage_named

__all__ = ["build_report", "markdown_table", "score_rows", "write_report"]
LEAD = ("ingest", "evaluate")  # the sources and the scores come first


def _header(store: RunStore) -> list[str]:
    ingest = store.manifest("ingest") or {}
    config = ingest.get("config", {})
    data, synth = config.get("data", {}), config.get("synthesize", {})
    return [
        f"# textdistill run `{store.run_id}`", "",
        f"- dataset: `{data.get('dataset')}`; method: `{synth.get('method')}`, "
        f"{synth.get('per_class')} per class; seeds: {config.get('run', {}).get('seeds')}",
        f"- encoder: `{config.get('signals', {}).get('model')}` "
        f"({config.get('signals', {}).get('precision')})",
        f"- config hash: `{ingest.get('config_hash', '')[:16]}`; labels: "
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


def build_report(run_dir: str | Path) -> str:
    store = RunStore.open(run_dir)
    parts = _header(store)
    for name in LEAD:
        parts += _section(store, name)
    parts += _funnel(RunAudit(run_dir)) + [""]
    for stage in PIPELINE:
        if stage.name not in LEAD:
            parts += _section(store, stage.name)
    parts += _stages(store)
    parts += ["", "Audit: `textdistill audit " + str(store.root) + "` (funnel), "
              "`--example ID` (lineage of one row), `--json`.", ""]
    return "\n".join(parts)


def write_report(run_dir: str | Path) -> Path:
    """Write report.md, only when its content changed (a finished run in a read-only folder
    is read, never written)."""
    path = Path(run_dir) / "report.md"
    text = build_report(run_dir)
    try:
        unchanged = path.is_file() and path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        unchanged = False  # unreadable: rewrite it
    if not unchanged:
        path.write_text(text, encoding="utf-8")
    return path
