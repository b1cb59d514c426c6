"""`report.md`: what a run did, what it produced and how well it scored, from its artifacts.

Everything comes from the run folder (manifests, Parquet, DuckDB audit), so
`textdistill report RUN_DIR` rebuilds the same file at any time.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Any

import pyarrow.compute as pc

from distill_core.artifacts.store import RunStore
from distill_core.audit import RunAudit

SAMPLES_PER_CLASS = 5


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def score_learners(summary: list[dict[str, Any]]) -> list[str]:
    """The learners of a scores summary, in order (a summary from before learners: the probe)."""
    return list(dict.fromkeys(entry.get("learner", "linear_probe") for entry in summary))


def score_rows(summary: list[dict[str, Any]]) -> list[list[str]]:
    """Rows of the scores table: setting, n, accuracy mean ± std, macro-F1 mean ± std.

    With several learners, each setting names its learner: `kmeans (distilled) [finetune]`.
    """
    several = len(score_learners(summary)) > 1
    rows = []
    for entry in summary:
        if entry["setting"] == "distilled":
            label = f"{entry['method']} (distilled)"
        elif entry["setting"] == "distilled_soft":
            label = f"{entry['method'].removesuffix('+soft')} (distilled, soft labels)"
        else:
            label = entry["setting"]
        if several:
            label += f" [{entry.get('learner', 'linear_probe')}]"
        budget = (f"{entry['per_class']}/class" if entry["per_class"]
                  else f"all ({entry['n_train']})")
        rows.append([label, budget, str(entry["n"]),
                     f"{_pct(entry['accuracy_mean'])} ± {_pct(entry['accuracy_std'])}",
                     f"{_pct(entry['macro_f1_mean'])} ± {_pct(entry['macro_f1_std'])}"])
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def build_report(run_dir: str | Path) -> str:
    store = RunStore.open(run_dir)
    audit = RunAudit(run_dir)
    ingest = store.manifest("ingest") or {}
    config = ingest.get("config", {})
    parts = [f"# textdistill run `{store.run_id}`", ""]
    data = config.get("data", {})
    synth = config.get("synthesize", {})
    parts += [
        f"- dataset: `{data.get('dataset')}`; method: `{synth.get('method')}`, "
        f"{synth.get('per_class')} per class; seeds: {config.get('run', {}).get('seeds')}",
        f"- encoder: `{config.get('signals', {}).get('model')}` "
        f"({config.get('signals', {}).get('precision')})",
        f"- config hash: `{ingest.get('config_hash', '')[:16]}`; labels: "
        f"{', '.join(ingest.get('label_names', []))}",
        "",
    ]
    for source in ingest.get("inputs", {}).get("sources", []):
        parts.append(f"- {source['split']}: `{source['source']}` ({source['rows_read']} rows read, "
                     f"sha256 {str(source.get('sha256', '-'))[:12]})")
    evaluate = store.manifest("evaluate")
    if evaluate is not None:
        learners = ", ".join(score_learners(evaluate["summary"]))
        parts += ["", f"## Scores ({learners} on the evaluation split, %)", "",
                  markdown_table(["setting", "budget", "n", "accuracy", "macro-F1"],
                         score_rows(evaluate["summary"])),
                  "", f"Evaluation rows: {evaluate['counts'].get('eval_rows')}. "
                  "Mean ± sample std over seeds; `full` is one deterministic fit."]
    funnel = [f for f in audit.funnel() if not f.get("handoff")]
    parts += ["", "## Funnel", "", markdown_table(
        ["stage", "rows in", "rows out", "rejected", "by reason", "in = out + rejected",
         "wall s", "reused"],
        [[f["stage"], str(f["rows_in"]), str(f["rows_out"]), str(f["rows_rejected"]),
          ", ".join(f"{k}: {v}" for k, v in f["rejects_by_reason"].items()) or "-",
          "yes" if f["balanced"] else "**NO**", str(f["wall_time_s"]),
          "cache" if f["cache_hit"] else "-"] for f in funnel])]
    filter_rows = []
    contaminated = {}
    for stage in ("clean", "filter"):
        manifest = store.manifest(stage) or {}
        for step in manifest.get("filters", []):
            filter_rows.append([stage, step["filter"], str(step["rows_in"]), str(step["rows_out"]),
                                ", ".join(f"{k}: {v}" for k, v in
                                          step["rejects_by_reason"].items()) or "-"])
            for reason, n in step["rejects_by_reason"].items():
                if reason.startswith("contaminated"):
                    contaminated[stage] = contaminated.get(stage, 0) + n
    if filter_rows:
        parts += ["", "### Filters", "", markdown_table(
            ["stage", "filter", "rows in", "rows out", "rejected"], filter_rows)]
    if any(store.manifest(s) and (store.manifest(s) or {}).get("stage_config", {}).get(
            "contamination", {}).get("enabled") for s in ("clean", "filter")):
        parts += ["", "Contamination against the evaluation split: "
                  + (", ".join(f"{n} rows dropped at {s}" for s, n in contaminated.items())
                     or "0 rows dropped") + "."]
    generate = store.manifest("generate")
    if generate is not None:
        counts = generate["counts"]
        parts += ["", "## Generation", "",
                  f"- model: `{generate.get('model')}` ({generate['stage_config'].get('dtype')}); "
                  f"backend: {generate.get('backend')}; workers: {generate.get('workers')}",
                  f"- {counts['prompts']} prompts in {counts['shards']} shards, "
                  f"{counts['answers']} answers, {counts['new_tokens']} new tokens in "
                  f"{generate.get('sampling_s')} s ({generate.get('tokens_per_second')} tokens/s)",
                  f"- lines: {counts['rows_in']}, usable {counts['rows_out']}"]
        if generate.get("generator"):
            g = generate["generator"]
            parts.append(f"- generator: {g['trainable_parameters']} trainable parameters, "
                         f"{g['settings']['steps']} steps in {g['wall_time_s']} s, loss "
                         f"{fmean(g['loss_first5']):.3f} → {fmean(g['loss_last5']):.3f} "
                         "(mean of the first and last five steps)")
    synthesize = store.manifest("synthesize") or {}
    if synthesize.get("class_shortfall"):
        parts += ["", "Classes smaller than the budget (all rows kept): "
                  f"`{synthesize['class_shortfall']}`"]
    if "filter" in audit.views:
        distilled = store.read("filter")
        first = distilled.filter(pc.equal(distilled.column("replicate"), 0))
        parts += ["", f"## Distilled examples (seed {config.get('run', {}).get('seeds', [0])[0]}, "
                  f"first {SAMPLES_PER_CLASS} per class)", ""]
        rows = []
        for label in ingest.get("label_names", []):
            of_label = first.filter(pc.equal(first.column("label"), label)).slice(
                0, SAMPLES_PER_CLASS)
            for row in of_label.to_pylist():
                text = row["text"] + (f" ||| {row['text_pair']}" if row["text_pair"] else "")
                rows.append([label, row["example_id"], text[:160]])
        parts.append(markdown_table(["label", "example_id", "text"], rows))
    parts += ["", "## Stages", "", markdown_table(
        ["stage", "fingerprint", "wall s", "peak RSS MiB", "cache"],
        [[s, (store.manifest(s) or {}).get("fingerprint", "")[:12],
          str((store.manifest(s) or {}).get("wall_time_s")),
          str((store.manifest(s) or {}).get("peak_rss_mb")),
          "hit" if (store.manifest(s) or {}).get("cache", {}).get("hit") else "-"]
         for s in store.stages()])]
    parts += ["", "Audit: `textdistill audit " + str(store.root) + "` (funnel), "
              "`--example ID` (lineage of one row), `--json`.", ""]
    return "\n".join(parts)


def write_report(run_dir: str | Path) -> Path:
    path = Path(run_dir) / "report.md"
    path.write_text(build_report(run_dir), encoding="utf-8")
    return path
