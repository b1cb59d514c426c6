"""The body sections of an export's dataset card, each a list of Markdown lines.

Each reads one part of the run (ingest sources, method settings, evaluate summary, filter
counts and rejects) or the exported rows; `card.py` puts them in order.
"""

from __future__ import annotations

import shlex
from collections import Counter
from typing import Any

import yaml

from distill_core.export.dataset import FinishedRun
from distill_core.export.sources import source_facts
from distill_core.markdown import SCORE_HEADER, markdown_table, score_rows

COLUMN_NOTES = {
    "example_id": "stable hash of the normalised text and label (the same row has the same id "
                  "in every run)",
    "text": "the text",
    "text_pair": "the second text of a pair task",
    "label": "the class (`ClassLabel` over the run's label names)",
    "parent_ids": "the training rows this row came from (itself for a selected row)",
    "weight": "the row's training weight (1.0 unless the method weights rows)",
    "soft_label": "the teacher's class probabilities (soft label), one per class",
    "origin": "`selected` (a real training row) or `generated` (written by a model)",
    "method": "the distillation method",
    "replicate": "the replicate index (one distilled set per seed)",
    "seed": "the seed of the replicate",
    "rank": "the row's rank within its class in the method's order",
    "score": "the method's score for the row",
    "run_id": "the textdistill run that made the row",
}


def _code(value: Any) -> str:
    return f"`{value}`"


def is_instruction(config: dict[str, Any]) -> bool:
    """Whether the run distilled instruction data (`data.task: instruction`)."""
    return config.get("data", {}).get("task") == "instruction"


def source_name(config: dict[str, Any]) -> str | None:
    """The source dataset's name: `data.dataset`, or instruction data's preset."""
    data = config.get("data", {})
    return data.get("dataset") or (data.get("instruction") or {}).get("preset")


def budget_words(config: dict[str, Any]) -> str:
    """The budget as the run set it: rows per class, or instruction data's fraction of the
    pool (below 1) or row count."""
    synth = config.get("synthesize", {})
    if not is_instruction(config):
        return f"{synth.get('per_class')} per class"
    budget = synth.get("budget")
    budget = 0.05 if budget is None else budget
    return f"{budget:.4g} of the pool" if budget < 1 else f"{int(budget)} rows"


def splits_section(run: FinishedRun, dataset_dict: Any,
                   splits: dict[str, tuple[int, int]]) -> list[str]:
    """One paragraph on what this is, then rows per split and class."""
    config = run.config
    synth = config.get("synthesize", {})
    dataset = source_name(config) or "the user's own files"
    names = run.label_names
    rows = []
    for name, (rep, seed) in splits.items():
        counts = Counter(dataset_dict[name]["label"])
        rows.append([name, str(rep), str(seed), str(dataset_dict[name].num_rows),
                     ", ".join(f"{names[i]}: {counts.get(i, 0)}" for i in range(len(names)))])
    held = ("each as its own split" if len(splits) > 1
            else f"one, as the split {_code(next(iter(splits)))}")
    what = (f"{budget_words(config)} (instruction data: prompt in `text`, response in "
            f"`text_pair`)" if is_instruction(config) else
            f"{synth.get('per_class')} rows per class, for {len(names)} classes "
            f"({', '.join(names)})")
    header = ["split", "replicate", "seed", "rows", "rows per class"]
    width = 4 if is_instruction(config) else 5  # one label: no rows per class
    return [f"A distilled training set made by textdistill from "
            f"{_code(dataset)} with the method {_code(synth.get('method'))}, "
            f"{what}. The run made one distilled set per seed "
            f"({len(run.replicates())} in all); this export holds {held}.",
            "", "## Splits", "",
            markdown_table(header[:width], [r[:width] for r in rows]),
            "", "```python",
            "from datasets import load_dataset, load_from_disk",
            "ds = load_from_disk(FOLDER)        # or load_dataset(FOLDER), or the hub repo id",
            "```"]


def feature_type(feature: Any) -> str:
    """A column's type in words: `string`, `list of float32`, `ClassLabel (2 names)`."""
    if hasattr(feature, "names") and hasattr(feature, "num_classes"):
        return f"ClassLabel ({feature.num_classes} names)"
    if hasattr(feature, "feature"):
        return f"list of {feature_type(feature.feature)}"
    return str(getattr(feature, "dtype", type(feature).__name__))


def columns_section(dataset_dict: Any) -> list[str]:
    first = next(iter(dataset_dict.values()))
    rows = [[_code(name), feature_type(feature), COLUMN_NOTES.get(name, "as written by the run")]
            for name, feature in first.features.items()]
    return ["## Columns", "", markdown_table(["column", "type", "meaning"], rows)]


def source_section(run: FinishedRun, license_id: str) -> list[str]:
    """The source dataset, its split sizes and files (with sha256), and its licence."""
    config = run.config
    ingest = run.manifests["ingest"]
    dataset = source_name(config)
    facts = source_facts(dataset)
    by_split = ingest.get("counts", {}).get("rows_by_split", {})
    rows = [[s.get("split", "-"), s.get("source", "-"), str(s.get("rows_read", "-")),
             str(s.get("rows_out", "-")), str(s.get("rows_rejected", "-")),
             _code(s["sha256"]) if s.get("sha256") else "-"]
            for s in ingest.get("inputs", {}).get("sources", [])]
    licence = (f"Licence: `{license_id}`" + (f": {facts.license_note}." if facts and
                                              facts.license_note else ".")
               if license_id != "unknown" else
               "Licence: unknown. The rows come from the source dataset: check its terms "
               "before you share or use them.")
    return ["## Source", "",
            f"Dataset {_code(dataset or 'own files')}: "
            + ", ".join(f"{split} {count} rows" for split, count in by_split.items())
            + " after ingest (the training split is what was distilled; the evaluation split "
            "scored it).", "",
            markdown_table(["split", "source", "rows read", "rows kept", "rejected", "sha256"],
                           rows), "", licence]


def method_section(run: FinishedRun) -> list[str]:
    """The method and its settings, the models used, the config hash and the run id."""
    config = run.config
    synth = run.manifests.get("synthesize", {}).get("stage_config", {})
    method = synth.get("method") or config.get("synthesize", {}).get("method")
    try:
        from distill_core.methods.registry import get_method

        summary = get_method(str(method)).summary
    except KeyError:
        summary = "a method this version of textdistill does not know"
    filter_cfg = run.manifests["filter"].get("stage_config", {})
    enabled = [name for name, value in filter_cfg.items()
               if value is True or (isinstance(value, dict) and value.get("enabled"))]
    lines = ["## Method", "",
             f"- method: {_code(method)}: {summary}",
             f"- budget: {budget_words(config)}; options: "
             f"{_code(synth.get('options') or {})}; soft labels: {synth.get('soft_labels')}",
             f"- seeds: {config.get('run', {}).get('seeds')}",
             f"- encoder: {_code(config.get('signals', {}).get('model'))}"]
    if "teacher" in run.manifests:
        lines.append(f"- teacher: {_code(config.get('teacher', {}).get('kind'))}")
    if "generate" in run.manifests:
        lines.append(f"- generator: {_code(config.get('generate', {}).get('model'))}")
    lines += [f"- filters: {', '.join(enabled) or 'none'}",
              f"- run id: {_code(run.store.run_id)}; config hash: "
              f"{_code(run.manifests['filter'].get('config_hash'))}",
              f"- textdistill {run.manifests['filter'].get('versions', {}).get('textdistill')}",
              "", "<details><summary>The run's whole config</summary>", "", "```yaml",
              yaml.safe_dump(config, sort_keys=False, allow_unicode=True).rstrip(), "```", "",
              "</details>"]
    return lines


def scores_section(run: FinishedRun) -> list[str]:
    evaluate = run.manifests.get("evaluate")
    if evaluate is None or not evaluate.get("summary"):
        return ["## Scores", "", "The run was not evaluated (no evaluate stage)."]
    return ["## Scores", "",
            f"Fresh learners trained on each distilled set and scored on the evaluation split "
            f"({evaluate.get('counts', {}).get('eval_rows')} rows), next to random subsets of "
            "the same budget and the full training split (%, mean ± std over seeds):", "",
            markdown_table(SCORE_HEADER, score_rows(evaluate["summary"]))]


def _contamination_rows(run: FinishedRun) -> list[list[str]]:
    rows = []
    for stage in ("clean", "filter"):
        for step in run.manifests.get(stage, {}).get("filters", []):
            if step.get("filter") == "contamination":
                reasons = ", ".join(f"{k}: {v}" for k, v in step["rejects_by_reason"].items())
                rows.append([stage, str(step["rows_in"]), str(step["rows_out"]),
                             str(step["rows_rejected"]), reasons or "-"])
    return rows


def contamination_section(run: FinishedRun) -> list[str]:
    """Whether rows copying or paraphrasing the evaluation split were dropped, and how many."""
    settings = run.manifests["filter"].get("stage_config", {}).get("contamination", {})
    if not settings.get("enabled"):
        return ["## Contamination check", "",
                "Off in this run (`filter.contamination.enabled: false`): the rows were not "
                "checked against the evaluation split."]
    threshold = settings.get("embedding_threshold")
    lines = ["## Contamination check", "",
             f"Every candidate row was checked against the evaluation split: a shared "
             f"{settings.get('ngram')}-word n-gram of normalised text (or equal text when "
             "shorter)" + (f", or an embedding cosine of at least {threshold}" if threshold
                           else "") + f"; such rows were dropped (across all "
             f"{len(run.replicates())} replicates):", "",
             markdown_table(["stage", "rows in", "rows out", "dropped", "by reason"],
                            _contamination_rows(run))]
    if run.store.parts("filter", rejects=True):
        rejects = run.store.read("filter", rejects=True, columns=["example_id", "reason",
                                                                   "detail"])
        found = [r for r in rejects.to_pylist() if str(r["reason"]).startswith("contaminated")]
        if found:
            lines += ["", f"First of the {len(found)} dropped rows:"]
            lines += [f"- {_code(r['example_id'])}: {r['detail']}" for r in found[:5]]
    return lines


def lineage_section(run: FinishedRun, dataset_dict: Any) -> list[str]:
    """Rows, distinct parents, selected vs generated, and the audit command for one row."""
    ids = [e for split in dataset_dict.values() for e in split["example_id"]]
    origins = Counter(o for split in dataset_dict.values() for o in split["origin"])
    parents = {p for split in dataset_dict.values() for ps in split["parent_ids"] for p in ps}
    in_train = sum(1 for p in parents if p in run.train_ids)
    command = shlex.join(["textdistill", "audit", str(run.store.root), "--example",
                          ids[0] if ids else "ID"])
    return ["## Lineage", "",
            f"{len(ids)} rows ({len(set(ids))} distinct example ids): "
            f"{origins.get('selected', 0)} selected from the training split, "
            f"{origins.get('generated', 0)} generated. They name {len(parents)} distinct "
            f"parents, {in_train} of them rows of the training split.", "",
            "Every row traces back to its source file and line, and for a generated row to the "
            "prompt and answer it came from, with the run folder at hand:", "",
            "```bash", command, "```"]
